// Asio's non-template code (sockets, reactor, scheduler, error categories), compiled once for
// the whole build instead of again in every file that includes <asio.hpp>: the top-level
// CMakeLists.txt defines ASIO_SEPARATE_COMPILATION. No thread of its own; Asio's callers run it.
#include <asio/impl/src.hpp>
