#include "tessera/core/env.h"

#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "tessera/core/error.h"

namespace tessera {
namespace {

constexpr const char* kVar = "TESSERA_TEST_ENV_VALUE";

// Sets the test variable for one test and unsets it afterwards.
class EnvValue {
 public:
  explicit EnvValue(const char* value) { setenv(kVar, value, 1); }
  ~EnvValue() { unsetenv(kVar); }
};

TEST(Env, UnsetOrEmptyReadsAsNothing) {
  unsetenv(kVar);
  EXPECT_FALSE(env_string(kVar).has_value());
  EXPECT_FALSE(env_int(kVar).has_value());
  EnvValue empty("");
  EXPECT_FALSE(env_string(kVar).has_value());
  EXPECT_FALSE(env_int(kVar).has_value());
}

TEST(Env, ReadsStringsAndIntegers) {
  {
    EnvValue v("hello world");
    EXPECT_EQ(env_string(kVar), "hello world");
  }
  {
    EnvValue v("42");
    EXPECT_EQ(env_int(kVar), 42);
  }
  {
    EnvValue v("-7");
    EXPECT_EQ(env_int(kVar), -7);
  }
}

TEST(Env, NonIntegerThrowsValueErrorNamingTheVariableAndValue) {
  for (const char* bad : {"12abc", "abc", "4.5", "1 2"}) {
    EnvValue v(bad);
    try {
      (void)env_int(kVar);
      ADD_FAILURE() << "no exception for '" << bad << "'";
    } catch (const ValueError& e) {
      std::string what = e.what();
      EXPECT_NE(what.find(kVar), std::string::npos) << what;
      EXPECT_NE(what.find(bad), std::string::npos) << what;
    }
  }
}

TEST(Env, IntegerOutOfRangeThrowsValueError) {
  EnvValue v("99999999999999999999999");
  EXPECT_THROW((void)env_int(kVar), ValueError);
}

}  // namespace
}  // namespace tessera
