derpkit_fuzz_target(url SOURCES ${CMAKE_CURRENT_LIST_DIR}/url_fuzz.cc LIBS lib_http)
