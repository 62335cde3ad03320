// The store server's protocol without sockets: the handshake, what a peer without the token can
// do (nothing), clamped waits, the cap on connections awaiting their handshake, and what is
// logged.
#include "store_service.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "store_protocol.h"
#include "tessera/comm/token_auth.h"
#include "testing/text.h"

namespace tessera::comm {
namespace {

using Clock = StoreService::Clock;
using State = StoreService::SessionState;
using std::chrono::milliseconds;

const std::string kToken = "service-test-token-0123456789";

using tessera::testing::contains;

// One frame's body taken off the front of `bytes`; nullopt while it is incomplete.
std::optional<std::string> take_frame(std::string& bytes) {
  if (bytes.size() < 4) return std::nullopt;
  const std::uint32_t length = frame_length(bytes.data());
  if (bytes.size() - 4 < length) return std::nullopt;
  std::string body = bytes.substr(4, length);
  bytes.erase(0, 4 + static_cast<std::size_t>(length));
  return body;
}

// A client of a StoreService, speaking through its session's input and output.
class FakeClient {
 public:
  FakeClient(StoreService& service, Clock::time_point now, std::string peer = "10.0.0.9:4242")
      : service_(service), id_(service.open(std::move(peer), now)) {}

  [[nodiscard]] StoreService::SessionId id() const { return id_; }
  [[nodiscard]] State state() const { return service_.state(id_); }

  // The next frame the server sent, or nullopt.
  std::optional<std::string> next() {
    std::string& out = service_.output(id_);
    received_ += out;
    out.clear();
    return take_frame(received_);
  }

  void send(const std::string& frame, Clock::time_point now) {
    sent_ += frame;
    service_.receive(id_, frame, now);
  }

  // Answers the challenge with a proof made from `token`; returns the server's verdict body.
  std::string handshake(const std::string& token, Clock::time_point now) {
    const std::string challenge = next().value();
    FrameReader reader(challenge);
    EXPECT_EQ(reader.u8(), static_cast<std::uint8_t>(StoreStatus::kChallenge));
    EXPECT_EQ(reader.str(), std::string(kStoreMagic));
    server_nonce_ = reader.str().value();
    client_nonce_ = random_nonce();
    send(FrameWriter()
             .u8(static_cast<std::uint8_t>(StoreCommand::kHandshake))
             .str(kStoreMagic)
             .str(client_nonce_)
             .str(client_proof(token, server_nonce_, client_nonce_))
             .finish(),
         now);
    return next().value_or("");
  }

  void authenticate(Clock::time_point now) {
    const std::string verdict = handshake(kToken, now);
    ASSERT_EQ(static_cast<std::uint8_t>(verdict.at(0)), 0) << "the right token was refused";
  }

  [[nodiscard]] const std::string& sent() const { return sent_; }
  [[nodiscard]] const std::string& received() const { return received_; }
  [[nodiscard]] const std::string& server_nonce() const { return server_nonce_; }
  [[nodiscard]] const std::string& client_nonce() const { return client_nonce_; }

 private:
  StoreService& service_;
  StoreService::SessionId id_;
  std::string sent_;
  std::string received_;
  std::string server_nonce_;
  std::string client_nonce_;
};

std::string get_frame(const std::string& key, std::int64_t timeout_ms) {
  return FrameWriter()
      .u8(static_cast<std::uint8_t>(StoreCommand::kGet))
      .str(key)
      .i64(timeout_ms)
      .finish();
}

std::string wait_frame(const std::vector<std::string>& keys, std::int64_t timeout_ms) {
  return FrameWriter()
      .u8(static_cast<std::uint8_t>(StoreCommand::kWait))
      .strs(keys)
      .i64(timeout_ms)
      .finish();
}

std::string set_frame(const std::string& key, const std::string& value) {
  return FrameWriter()
      .u8(static_cast<std::uint8_t>(StoreCommand::kSet))
      .str(key)
      .str(value)
      .finish();
}

std::uint8_t status_of(const std::string& body) { return static_cast<std::uint8_t>(body.at(0)); }

class StoreServiceTest : public ::testing::Test {
 protected:
  StoreService service_{kToken, [this](const std::string& line) { log_ += line + "\n"; }};
  std::string log_;
  const Clock::time_point t0_ = Clock::now();
};

TEST_F(StoreServiceTest, BothSidesProveTheTokenWithoutSendingIt) {
  FakeClient client(service_, t0_);
  const std::string verdict = client.handshake(kToken, t0_);
  FrameReader reader(verdict);
  ASSERT_EQ(reader.u8(), static_cast<std::uint8_t>(StoreStatus::kOk));
  const auto proof = reader.str();
  ASSERT_TRUE(proof.has_value());
  EXPECT_TRUE(
      proofs_equal(*proof, server_proof(kToken, client.server_nonce(), client.client_nonce())));
  EXPECT_FALSE(
      proofs_equal(*proof, client_proof(kToken, client.server_nonce(), client.client_nonce())))
      << "the server's proof must not be the client's, or one could be replayed as the other";
  EXPECT_FALSE(contains(client.sent(), kToken));
  EXPECT_FALSE(contains(client.received(), kToken));
  EXPECT_EQ(service_.unauthenticated(), 0u);
}

TEST_F(StoreServiceTest, EachConnectionGetsAFreshChallenge) {
  FakeClient a(service_, t0_);
  FakeClient b(service_, t0_);
  EXPECT_NE(a.next(), b.next());
}

TEST_F(StoreServiceTest, AWrongTokenIsRefusedAndItsRequestsAreNeverServed) {
  FakeClient stranger(service_, t0_);
  // The requests follow the handshake at once, as a client that does not wait for the verdict.
  const std::string verdict = stranger.handshake("not-the-token-0123456789", t0_);
  EXPECT_EQ(status_of(verdict), static_cast<std::uint8_t>(StoreStatus::kRefused));
  stranger.send(set_frame("job/key", "forged"), t0_);
  stranger.send(get_frame("job/key", 0), t0_);
  stranger.send(wait_frame({"job/key"}, 0), t0_);
  EXPECT_FALSE(stranger.next().has_value()) << "a refused peer got an answer";
  EXPECT_EQ(stranger.state(), State::kClosing);
  EXPECT_TRUE(contains(log_, "refused a connection from 10.0.0.9:4242: bad job token")) << log_;
  EXPECT_FALSE(contains(log_, kToken)) << log_;

  FakeClient rank(service_, t0_);
  rank.authenticate(t0_);
  rank.send(get_frame("job/key", 0), t0_);
  EXPECT_EQ(status_of(rank.next().value()), static_cast<std::uint8_t>(StoreStatus::kTimeout))
      << "the stranger's set took effect";
}

TEST_F(StoreServiceTest, RequestsBeforeTheHandshakeAreRefused) {
  FakeClient stranger(service_, t0_);
  (void)stranger.next();
  stranger.send(set_frame("job/key", "forged"), t0_);
  const auto verdict = stranger.next();
  ASSERT_TRUE(verdict.has_value());
  EXPECT_EQ(status_of(*verdict), static_cast<std::uint8_t>(StoreStatus::kRefused));
  EXPECT_TRUE(contains(log_, "not a tessera store handshake")) << log_;
}

TEST_F(StoreServiceTest, AnotherProtocolVersionIsRefusedByName) {
  FakeClient old(service_, t0_);
  (void)old.next();
  old.send(FrameWriter()
               .u8(static_cast<std::uint8_t>(StoreCommand::kHandshake))
               .str("tessera-store-1")
               .str("a token in clear text, as version 1 sent it")
               .finish(),
           t0_);
  EXPECT_EQ(status_of(old.next().value()), static_cast<std::uint8_t>(StoreStatus::kRefused));
  EXPECT_TRUE(contains(log_, "it speaks tessera-store-1, this store tessera-store-2")) << log_;
}

TEST_F(StoreServiceTest, AnOversizedHandshakeIsRefusedBeforeItArrives) {
  FakeClient stranger(service_, t0_);
  (void)stranger.next();
  stranger.send(std::string("\xff\xff\xff\x0f", 4), t0_);
  EXPECT_EQ(status_of(stranger.next().value()), static_cast<std::uint8_t>(StoreStatus::kRefused));
  EXPECT_TRUE(contains(log_, "a 268435455-byte handshake")) << log_;
}

TEST_F(StoreServiceTest, ATimeoutBelowZeroOrZeroAnswersAtOnce) {
  FakeClient rank(service_, t0_);
  rank.authenticate(t0_);
  for (std::int64_t timeout :
       {std::int64_t{-1}, std::int64_t{0}, std::numeric_limits<std::int64_t>::min()}) {
    rank.send(get_frame("absent", timeout), t0_);
    const auto reply = rank.next();
    ASSERT_TRUE(reply.has_value()) << "get with timeout " << timeout << " did not answer at once";
    EXPECT_EQ(status_of(*reply), static_cast<std::uint8_t>(StoreStatus::kTimeout));
    rank.send(wait_frame({"absent"}, timeout), t0_);
    ASSERT_TRUE(rank.next().has_value()) << "wait with timeout " << timeout;
  }
  EXPECT_FALSE(service_.next_deadline().has_value());
}

TEST_F(StoreServiceTest, AHugeTimeoutIsCutToTheMaximumAndStillAnsweredByASet) {
  FakeClient waiter(service_, t0_);
  FakeClient setter(service_, t0_);
  waiter.authenticate(t0_);
  setter.authenticate(t0_);
  waiter.send(get_frame("late", std::numeric_limits<std::int64_t>::max()), t0_);
  EXPECT_FALSE(waiter.next().has_value());
  EXPECT_EQ(service_.next_deadline(), t0_ + kMaxTimeout);
  setter.send(set_frame("late", "here"), t0_);
  EXPECT_EQ(status_of(setter.next().value()), static_cast<std::uint8_t>(StoreStatus::kOk));
  const std::string reply_bytes = waiter.next().value();  // FrameReader only views it
  FrameReader reply(reply_bytes);
  EXPECT_EQ(reply.u8(), static_cast<std::uint8_t>(StoreStatus::kOk));
  EXPECT_EQ(reply.str(), "here");

  waiter.send(wait_frame({"never"}, std::numeric_limits<std::int64_t>::max()), t0_);
  service_.expire(t0_ + kMaxTimeout);
  const std::string timed_out_bytes = waiter.next().value();
  FrameReader timed_out(timed_out_bytes);
  EXPECT_EQ(timed_out.u8(), static_cast<std::uint8_t>(StoreStatus::kTimeout));
  EXPECT_EQ(timed_out.strs(), std::vector<std::string>{"never"});
}

TEST_F(StoreServiceTest, TheOldestConnectionAwaitingItsHandshakeMakesRoomForANewOne) {
  FakeClient rank(service_, t0_);
  rank.authenticate(t0_);
  std::vector<FakeClient> idle;
  idle.reserve(StoreService::kMaxUnauthenticated + 1);
  for (std::size_t i = 0; i < StoreService::kMaxUnauthenticated; ++i) {
    idle.emplace_back(service_, t0_, "10.6.6.6:" + std::to_string(1000 + i));
  }
  EXPECT_EQ(service_.unauthenticated(), StoreService::kMaxUnauthenticated);
  EXPECT_EQ(idle.front().state(), State::kOpen);
  idle.emplace_back(service_, t0_, "10.6.6.6:9999");
  EXPECT_EQ(idle.front().state(), State::kClosed);
  EXPECT_EQ(idle[1].state(), State::kOpen);
  EXPECT_EQ(idle.back().state(), State::kOpen);
  EXPECT_EQ(service_.unauthenticated(), StoreService::kMaxUnauthenticated);
  EXPECT_EQ(rank.state(), State::kOpen) << "an authenticated connection is never evicted";
  EXPECT_TRUE(contains(log_, "dropped 10.6.6.6:1000: it had not authenticated")) << log_;
  // The newest can still authenticate.
  idle.back().authenticate(t0_);
  EXPECT_EQ(service_.unauthenticated(), StoreService::kMaxUnauthenticated - 1);
}

TEST_F(StoreServiceTest, AHandshakeIsDueByAFixedDeadlineWhateverArrivesMeanwhile) {
  FakeClient slow(service_, t0_);
  (void)slow.next();
  // One byte at a time does not extend the deadline.
  slow.send(std::string(1, '\x40'), t0_ + kHandshakeTimeout / 2);
  service_.expire(t0_ + kHandshakeTimeout - milliseconds(1));
  EXPECT_EQ(slow.state(), State::kOpen);
  EXPECT_EQ(service_.next_deadline(), t0_ + kHandshakeTimeout);
  service_.expire(t0_ + kHandshakeTimeout);
  EXPECT_EQ(slow.state(), State::kClosed);
  EXPECT_TRUE(contains(log_, "dropped 10.0.0.9:4242: no handshake within")) << log_;
  EXPECT_EQ(service_.unauthenticated(), 0u);
}

TEST_F(StoreServiceTest, AMalformedOrOversizedFrameFromARankDropsItWithALogLine) {
  FakeClient truncated(service_, t0_, "127.0.0.1:1111");
  truncated.authenticate(t0_);
  truncated.send(FrameWriter().u8(static_cast<std::uint8_t>(StoreCommand::kSet)).u32(99).finish(),
                 t0_);
  EXPECT_EQ(truncated.state(), State::kClosed);
  EXPECT_TRUE(contains(log_, "dropped 127.0.0.1:1111: it sent a malformed request (command 2"))
      << log_;

  FakeClient huge(service_, t0_, "127.0.0.1:2222");
  huge.authenticate(t0_);
  huge.send(std::string("\xff\xff\xff\xff", 4), t0_);
  EXPECT_EQ(huge.state(), State::kClosed);
  EXPECT_TRUE(contains(log_, "dropped 127.0.0.1:2222: it sent a 4294967295-byte frame")) << log_;

  FakeClient unknown(service_, t0_, "127.0.0.1:3333");
  unknown.authenticate(t0_);
  unknown.send(FrameWriter().u8(200).finish(), t0_);
  EXPECT_EQ(unknown.state(), State::kClosed);
  EXPECT_TRUE(contains(log_, "dropped 127.0.0.1:3333: it sent a malformed request (command 200"))
      << log_;
}

TEST_F(StoreServiceTest, RefusalsAreLoggedOncePerIntervalWithACountOfTheRest) {
  std::vector<FakeClient> strangers;
  strangers.reserve(5);
  for (int i = 0; i < 5; ++i) {
    strangers.emplace_back(service_, t0_, "10.6.6.6:" + std::to_string(2000 + i));
    (void)strangers.back().handshake("wrong-token-0123456789", t0_);
  }
  EXPECT_EQ(std::count(log_.begin(), log_.end(), '\n'), 1) << log_;
  EXPECT_EQ(service_.next_deadline(), t0_ + StoreService::kLogInterval);
  service_.expire(t0_ + StoreService::kLogInterval);
  EXPECT_EQ(std::count(log_.begin(), log_.end(), '\n'), 2) << log_;
  EXPECT_TRUE(contains(log_,
                       "4 more like these in the last 10 s; the latest: refused a "
                       "connection from 10.6.6.6:2004"))
      << log_;
}

}  // namespace
}  // namespace tessera::comm
