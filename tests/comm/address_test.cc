#include "tessera/comm/address.h"

#include <gtest/gtest.h>

namespace tessera::comm {
namespace {

TEST(ParseHostPort, TakesAHostOrABracketedIpv6AddressAndAPort) {
  EXPECT_EQ(parse_host_port("node0:29500")->host, "node0");
  EXPECT_EQ(parse_host_port("node0:29500")->port, 29500);
  EXPECT_EQ(parse_host_port("10.0.0.1:0")->port, 0);
  EXPECT_EQ(parse_host_port("[::1]:65535")->host, "::1");
  EXPECT_EQ(parse_host_port("[::1]:65535")->port, 65535);
}

TEST(ParseHostPort, RefusesWhatIsNotHostColonPort) {
  for (const char* bad : {"", "node0", "node0:", ":29500", "node0:65536", "node0:-1", "node0:12x",
                          "::1:80", "[::1]", "[::1]80", "[]:80", "[[::1]:80", "a]:80"}) {
    EXPECT_FALSE(parse_host_port(bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace tessera::comm
