package io.egresstunnel.proto;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.ContinuationWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import java.util.List;
import org.assertj.core.api.ThrowableAssert;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Every kind of malformed input yields a typed {@link ProtocolException} of the documented scope,
 * the offending message is released, and the decoder goes on decoding the next message.
 */
class MalformedFrameTest {
  private static final int DIAL = FrameType.DIAL.code();

  @ParameterizedTest
  @ValueSource(ints = {0, 1, 4, 8})
  void truncatedHeader(int size) {
    expectSessionError(new byte[size], ProtocolError.TRUNCATED_HEADER, "shorter than the 9-byte");
  }

  @ParameterizedTest
  @ValueSource(ints = {0x00, 0x0A, 0x7F, 0xFF})
  void unknownFrameType(int type) {
    expectSessionError(
        Wire.body().frame(type, 1),
        ProtocolError.UNKNOWN_FRAME_TYPE,
        String.format("0x%02x", type));
  }

  @Test
  void oversizedPayloadIsRefusedBeforeAnyBodyIsRead() {
    EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder(Limits.MIN_FRAME_PAYLOAD_FLOOR));
    byte[] raw =
        Wire.body().zeros(Limits.MIN_FRAME_PAYLOAD_FLOOR + 1).frame(FrameType.DATA.code(), 1);
    ProtocolException e = decodeFailure(ch, raw);
    assertThat(e.error()).isEqualTo(ProtocolError.FRAME_TOO_LARGE);
    assertThat(e.isStreamError()).isFalse();
    assertThat(e).hasMessageContaining("16385 bytes exceeds the limit of 16384");
  }

  @Test
  void declaredLengthLongerThanMessage() {
    byte[] raw = Wire.body().u32(1).frame(FrameType.WINDOW_UPDATE.code(), 0, 1, 5);
    expectSessionError(
        raw, ProtocolError.LENGTH_MISMATCH, "declares 5 body bytes but the message holds 4");
  }

  @Test
  void declaredLengthShorterThanMessage() {
    byte[] raw = Wire.body().u32(1).frame(FrameType.WINDOW_UPDATE.code(), 0, 1, 3);
    expectSessionError(raw, ProtocolError.LENGTH_MISMATCH, "declares 3 body bytes");
  }

  @ParameterizedTest
  @EnumSource(
      value = FrameType.class,
      names = {"DIAL", "DIAL_RESULT", "DATA", "WINDOW_UPDATE", "FIN", "RESET"})
  void streamFrameOnStreamZero(FrameType type) {
    expectSessionError(
        Wire.body().frame(type.code(), 0), ProtocolError.INVALID_STREAM_ID, "needs a stream id");
  }

  @ParameterizedTest
  @EnumSource(
      value = FrameType.class,
      names = {"AGENT_HELLO", "SERVER_HELLO", "GO_AWAY"})
  void sessionFrameOnAStream(FrameType type) {
    expectSessionError(
        Wire.body().frame(type.code(), 3), ProtocolError.INVALID_STREAM_ID, "session frame");
  }

  @Test
  void reservedStreamIdBit() {
    expectSessionError(
        Wire.body().frame(FrameType.FIN.code(), 0, 0x8000_0001, 0),
        ProtocolError.INVALID_STREAM_ID,
        "reserved");
  }

  @Test
  void undefinedFlags() {
    expectSessionError(
        Wire.body().frame(FrameType.FIN.code(), 0x01, 1, 0), ProtocolError.INVALID_FLAGS, "0x01");
  }

  @Test
  void invalidUtf8InHostIsAStreamError() {
    byte[] raw = Wire.body().u32(1000).u16(443).u16(2).bytes(0xC3, 0x28).frame(DIAL, 7);
    expectStreamError(raw, 7, ProtocolError.INVALID_UTF8, "host is not valid UTF-8");
  }

  @Test
  void overlongUtf8InHostIsAStreamError() {
    byte[] raw = Wire.body().u32(1000).u16(443).u16(2).bytes(0xC0, 0xAF).frame(DIAL, 7);
    expectStreamError(raw, 7, ProtocolError.INVALID_UTF8, "host");
  }

  @Test
  void portZeroIsAStreamError() {
    byte[] raw = Wire.body().u32(1000).u16(0).string("127.0.0.1").frame(DIAL, 9);
    expectStreamError(
        raw, 9, ProtocolError.INVALID_FIELD, "port 0 is outside the allowed range 1..65535");
  }

  @Test
  void portAbove65535CannotBeBuilt() {
    // The wire field is 16 bits wide, so no message can carry it; the API refuses it up front.
    assertThatThrownBy(() -> new Dial(1, 0, "127.0.0.1", 65536))
        .isInstanceOf(IllegalArgumentException.class)
        .hasMessage("port 65536 is outside the allowed range 1..65535");
  }

  @Test
  void emptyHostOrHostWithControlCharacters() {
    expectStreamError(
        Wire.body().u32(0).u16(80).string("").frame(DIAL, 3),
        3,
        ProtocolError.INVALID_FIELD,
        "host is empty");
    expectStreamError(
        Wire.body().u32(0).u16(80).string("a\r\nb").frame(DIAL, 3),
        3,
        ProtocolError.INVALID_FIELD,
        "control character");
  }

  @Test
  void hostLongerThanADnsName() {
    expectStreamError(
        Wire.body().u32(0).u16(80).string("h".repeat(254)).frame(DIAL, 3),
        3,
        ProtocolError.INVALID_FIELD,
        "host is 254 bytes long; at most 253");
  }

  @Test
  void dialTimeoutAboveTheLimit() {
    expectStreamError(
        Wire.body().u32(0xFFFF_FFFFL).u16(80).string("x").frame(DIAL, 3),
        3,
        ProtocolError.INVALID_FIELD,
        "dial timeout");
  }

  @Test
  void truncatedBodyIsAStreamError() {
    expectStreamError(
        Wire.body().u32(1000).u8(1).frame(DIAL, 11), 11, ProtocolError.MALFORMED_BODY, "short");
  }

  @Test
  void trailingBytesAreAStreamError() {
    expectStreamError(
        Wire.body().u32(5).u8(0).frame(FrameType.WINDOW_UPDATE.code(), 11),
        11,
        ProtocolError.MALFORMED_BODY,
        "1 bytes follow");
  }

  @ParameterizedTest
  @ValueSource(longs = {0, 0x8000_0000L, 0xFFFF_FFFFL})
  void windowIncrementOutOfRange(long increment) {
    expectStreamError(
        Wire.body().u32(increment).frame(FrameType.WINDOW_UPDATE.code(), 4),
        4,
        ProtocolError.INVALID_FIELD,
        "window increment");
  }

  @Test
  void unknownDialStatusAndResetCode() {
    expectStreamError(
        Wire.body().u8(99).string("").frame(FrameType.DIAL_RESULT.code(), 2),
        2,
        ProtocolError.INVALID_FIELD,
        "unknown dial status 99");
    expectStreamError(
        Wire.body().u8(200).string("").frame(FrameType.RESET.code(), 2),
        2,
        ProtocolError.INVALID_FIELD,
        "unknown error code 200");
  }

  @Test
  void messageLongerThanTheLimit() {
    expectStreamError(
        Wire.body().u8(1).string("m".repeat(1025)).frame(FrameType.RESET.code(), 2),
        2,
        ProtocolError.INVALID_FIELD,
        "message is 1025 bytes long");
  }

  @Test
  void malformedGoAwayIsASessionError() {
    expectSessionError(
        Wire.body().u8(0).frame(FrameType.GO_AWAY.code(), 0),
        ProtocolError.MALFORMED_BODY,
        "GO_AWAY");
  }

  @Test
  void helloWithBadAddressFamilyOrCidr() {
    expectSessionError(
        helloPrefix().u8(1).u8(5).bytes(1, 2, 3, 4).u8(0).frame(FrameType.AGENT_HELLO.code(), 0),
        ProtocolError.INVALID_FIELD,
        "address family 5");
    expectSessionError(
        helloPrefix()
            .u8(0)
            .u8(1)
            .u8(4)
            .bytes(10, 42, 1, 1)
            .u8(24)
            .frame(FrameType.AGENT_HELLO.code(), 0),
        ProtocolError.INVALID_FIELD,
        "host bits set");
    expectSessionError(
        helloPrefix()
            .u8(0)
            .u8(1)
            .u8(4)
            .bytes(10, 0, 0, 0)
            .u8(33)
            .frame(FrameType.AGENT_HELLO.code(), 0),
        ProtocolError.INVALID_FIELD,
        "prefix length 33");
    expectSessionError(
        helloPrefix().u8(65).frame(FrameType.AGENT_HELLO.code(), 0),
        ProtocolError.INVALID_FIELD,
        "address count 65");
  }

  @Test
  void helloWithVersionRangeInverted() {
    byte[] raw =
        Wire.body()
            .u16(3)
            .u16(2)
            .u32(0)
            .u32(65536)
            .u32(65536)
            .u16(10250)
            .string("n")
            .u8(0)
            .u8(0)
            .frame(FrameType.AGENT_HELLO.code(), 0);
    expectSessionError(raw, ProtocolError.INVALID_FIELD, "max version 2");
  }

  @Test
  void textContinuationAndFragmentedMessagesAreSessionErrors() {
    for (WebSocketFrame msg :
        List.of(
            new TextWebSocketFrame("hello"),
            new ContinuationWebSocketFrame(Unpooled.wrappedBuffer(new byte[9])),
            new BinaryWebSocketFrame(false, 0, Unpooled.wrappedBuffer(new byte[9])))) {
      EmbeddedChannel ch = Wire.decoderChannel();
      ThrowableAssert.ThrowingCallable write = () -> ch.writeInbound(msg);
      assertThatThrownBy(write)
          .isInstanceOfSatisfying(
              ProtocolException.class,
              e -> {
                assertThat(e.error()).isEqualTo(ProtocolError.INVALID_MESSAGE);
                assertThat(e.isStreamError()).isFalse();
              })
          .hasMessageContaining("unfragmented binary messages");
      assertThat(msg.refCnt()).isZero();
      assertThat(ch.finishAndReleaseAll()).isFalse();
    }
  }

  @Test
  void aStreamErrorLeavesTheDecoderUsableForTheNextFrame() {
    EmbeddedChannel ch = Wire.decoderChannel();
    decodeFailure(ch, Wire.body().u32(1000).u16(0).string("x").frame(DIAL, 5));
    ch.writeInbound(Wire.message(Wire.body().u32(100).frame(FrameType.WINDOW_UPDATE.code(), 3)));
    assertThat((Frame) ch.readInbound()).isEqualTo(new WindowUpdate(3, 100));
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  private static Wire helloPrefix() {
    return Wire.body().u16(1).u16(1).u32(0).u32(65536).u32(65536).u16(10250).string("node");
  }

  private static void expectSessionError(byte[] raw, ProtocolError error, String text) {
    EmbeddedChannel ch = Wire.decoderChannel();
    ProtocolException e = decodeFailure(ch, raw);
    assertThat(e.error()).isEqualTo(error);
    assertThat(e.isStreamError()).as("session-scoped").isFalse();
    assertThat(e.streamId()).isZero();
    assertThat(e).hasMessageContaining(text);
  }

  private static void expectStreamError(
      byte[] raw, int streamId, ProtocolError error, String text) {
    EmbeddedChannel ch = Wire.decoderChannel();
    ProtocolException e = decodeFailure(ch, raw);
    assertThat(e.error()).isEqualTo(error);
    assertThat(e.isStreamError()).as("stream-scoped").isTrue();
    assertThat(e.streamId()).isEqualTo(streamId);
    assertThat(e).hasMessageContaining(text);
  }

  /** Writes {@code raw} as one message, expects a ProtocolException, and checks nothing leaked. */
  private static ProtocolException decodeFailure(EmbeddedChannel ch, byte[] raw) {
    BinaryWebSocketFrame msg = Wire.message(raw);
    ProtocolException[] caught = new ProtocolException[1];
    assertThatThrownBy(() -> ch.writeInbound(msg))
        .isInstanceOfSatisfying(ProtocolException.class, e -> caught[0] = e);
    assertThat(msg.refCnt()).as("the malformed message is released").isZero();
    assertThat((Object) ch.readInbound()).as("nothing is passed on").isNull();
    return caught[0];
  }
}
