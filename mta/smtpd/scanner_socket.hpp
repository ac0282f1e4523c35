// Blocking client sockets with a deadline for smtpd's scanners: the shared ones of common/verify, under smtpd's names.
#pragma once

#include "common/verify/scanner_socket.hpp"

namespace ferry::smtpd {

using scan::connect_to;
using scan::now;
using scan::send_all;
using scan::wait_for;

}  // namespace ferry::smtpd
