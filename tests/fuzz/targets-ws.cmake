derpkit_fuzz_target(ws_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/ws_frame_fuzz.cc LIBS lib_http)
