derpkit_fuzz_target(duration SOURCES ${CMAKE_CURRENT_LIST_DIR}/duration_fuzz.cc LIBS lib_util)
derpkit_fuzz_target(netaddr SOURCES ${CMAKE_CURRENT_LIST_DIR}/netaddr_fuzz.cc LIBS lib_util)
