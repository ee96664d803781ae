derpkit_fuzz_target(stun SOURCES ${CMAKE_CURRENT_LIST_DIR}/stun_fuzz.cc LIBS lib_stun lib_util)
