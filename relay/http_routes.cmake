# Pure routing of the relay's HTTP surface (no sockets): included from relay/CMakeLists.txt.
add_library(relay_http_routes STATIC ${CMAKE_CURRENT_LIST_DIR}/http_routes.cc)
target_link_libraries(relay_http_routes PUBLIC lib_http)
