derpkit_fuzz_target(http_head SOURCES ${CMAKE_CURRENT_LIST_DIR}/http_head_fuzz.cc LIBS lib_http)
