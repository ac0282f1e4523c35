// The header lines ferry-mda adds and reads: Return-Path, Delivered-To, and the queue id in Received.
#pragma once

#include <string>
#include <string_view>

namespace ferry::mda {

inline constexpr size_t kMaxQueueIdLength = 64;

// "Return-Path: <sender>\nDelivered-To: recipient\n" (RFC 5321 4.4; Delivered-To as Postfix and
// Dovecot write it). An empty sender is the null reverse-path "<>". CR and LF in the values
// (which a valid path never has) become spaces, so no value can add a header line.
std::string delivery_headers(std::string_view sender, std::string_view recipient);

// The queue id in the topmost Received: header ("... id 0123ABCD; date"), so that one grep follows
// a message from smtpd to the Maildir. Only the header section is searched and only the first
// Received: field (unfolded); the id must be 1..kMaxQueueIdLength characters of [A-Za-z0-9._-].
// Empty when there is none.
std::string queue_id_from_received(std::string_view message);

// The client's address in the same Received: field ("from name (name [192.0.2.1]) by ..."), for
// the filters' CLIENT_ADDRESS; empty when there is none or the field is not ferry's (no queue id).
std::string client_address_from_received(std::string_view message);

// A message read from a pipe (LDA mode) with CRLF or LF line ends, stored with LF: each CRLF becomes
// LF; a lone CR is kept as it is.
std::string to_lf(std::string_view message);

}  // namespace ferry::mda
