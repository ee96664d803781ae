derpkit_fuzz_target(proxy_protocol SOURCES ${CMAKE_CURRENT_LIST_DIR}/proxy_protocol_fuzz.cc LIBS lib_http)
