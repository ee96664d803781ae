// asio::ssl's non-template code, compiled once (see asio_impl.cc). A file of its own so that a
// program using Asio without TLS links no OpenSSL. No thread of its own.
#include <asio/ssl/impl/src.hpp>
