# STUN responder on loopback, against our codec and coturn's turnutils_stunclient.
# Included from tests/integration/CMakeLists.txt.
derpkit_unit_test(stun_server_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/stun_server_test.cc
  LIBS relay_stun lib_stun lib_util)
