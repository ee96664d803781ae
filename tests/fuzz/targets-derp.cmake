derpkit_fuzz_target(derp_frame SOURCES ${CMAKE_CURRENT_LIST_DIR}/derp_frame_fuzz.cc LIBS lib_derp)
derpkit_fuzz_target(derp_clientinfo SOURCES ${CMAKE_CURRENT_LIST_DIR}/derp_clientinfo_fuzz.cc
                    LIBS lib_derp)
derpkit_fuzz_target(derp_keyfile SOURCES ${CMAKE_CURRENT_LIST_DIR}/derp_keyfile_fuzz.cc
                    LIBS lib_derp)
