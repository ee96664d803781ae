# The relay's UDP STUN responder (relay/stun_server.{h,cc}). Included from relay/CMakeLists.txt.
add_library(relay_stun STATIC ${CMAKE_CURRENT_LIST_DIR}/stun_server.cc)
target_link_libraries(relay_stun PUBLIC lib_stun lib_util Threads::Threads)
