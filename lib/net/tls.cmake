# TLS for lib/net: OpenSSL contexts for asio::ssl, the DERP meta certificate, pinning and the
# self-signed certificate files. Included from lib/net/CMakeLists.txt.
add_library(lib_net_tls STATIC
  ${CMAKE_CURRENT_LIST_DIR}/tls.cc
  ${CMAKE_CURRENT_LIST_DIR}/certs.cc
  ${CMAKE_CURRENT_LIST_DIR}/openssl_util.cc)
target_link_libraries(lib_net_tls PUBLIC lib_util OpenSSL::SSL OpenSSL::Crypto Threads::Threads)
