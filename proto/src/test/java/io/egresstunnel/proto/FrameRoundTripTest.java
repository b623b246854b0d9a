package io.egresstunnel.proto;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import java.net.InetAddress;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ThreadLocalRandom;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every frame type through FrameEncoder and FrameDecoder, with the boundary values of each field.
 */
class FrameRoundTripTest {
  private static final int MAX_ID = Limits.MAX_STREAM_ID;
  private static final String LONGEST_NAME = "n".repeat(Limits.MAX_NAME_BYTES);
  // 1024 UTF-8 bytes made of two-byte characters: the longest message, multi-byte.
  private static final String LONGEST_MESSAGE = "é".repeat(Limits.MAX_MESSAGE_BYTES / 2);

  static Stream<Frame> controlFrames() {
    List<Frame> frames = new ArrayList<>();
    frames.add(
        new AgentHello(1, 1, 0, 1, Limits.MIN_FRAME_PAYLOAD_FLOOR, 1, "n", List.of(), List.of()));
    frames.add(
        new AgentHello(
            0xFFFF,
            0xFFFF,
            -1,
            Limits.MAX_WINDOW,
            Limits.MAX_FRAME_PAYLOAD_CEILING,
            0xFFFF,
            LONGEST_NAME,
            manyAddresses(Limits.MAX_HELLO_ENTRIES),
            manyCidrs(Limits.MAX_HELLO_ENTRIES)));
    frames.add(
        new AgentHello(
            1,
            3,
            0,
            Limits.DEFAULT_INITIAL_WINDOW,
            Limits.DEFAULT_MAX_FRAME_PAYLOAD,
            10250,
            "worker-1.example",
            List.of(ip("127.0.0.2"), ip("::1"), ip("fd00::2"), ip("::ffff:10.0.0.1")),
            List.of(Cidr.parse("10.42.1.0/24"), Cidr.parse("fd00:42:1::/64"))));
    frames.add(
        new AgentHello(
            1,
            1,
            AgentHello.CAP_DEFAULT_ROUTE,
            Limits.DEFAULT_INITIAL_WINDOW,
            Limits.DEFAULT_MAX_FRAME_PAYLOAD,
            10250,
            "site-gw",
            List.of(ip("127.0.0.2")),
            List.of(),
            List.of(Cidr.parse("192.168.50.0/24"), Cidr.parse("fd00:50::/64")),
            List.of("db.site.example", LONGEST_NAME)));
    frames.add(new ServerHello(1, 0, 1, Limits.MIN_FRAME_PAYLOAD_FLOOR, 1, 1, "s"));
    frames.add(
        new ServerHello(
            0xFFFF,
            -1,
            Limits.MAX_WINDOW,
            Limits.MAX_FRAME_PAYLOAD_CEILING,
            Integer.MAX_VALUE,
            0xFFFF,
            LONGEST_NAME));
    frames.add(new Dial(1, 0, "127.0.0.1", 1));
    frames.add(new Dial(MAX_ID, Limits.MAX_DIAL_TIMEOUT_MILLIS, LONGEST_NAME, 0xFFFF));
    frames.add(new Dial(2, 5000, "::1", 10250));
    frames.add(new Dial(3, 5000, "kübelet.example", 10250));
    for (DialStatus s : DialStatus.values()) {
      frames.add(new DialResult(7, s, s == DialStatus.OK ? "" : "dial failed: " + s));
    }
    frames.add(new DialResult(MAX_ID, DialStatus.REFUSED, LONGEST_MESSAGE));
    frames.add(new WindowUpdate(1, 1));
    frames.add(new WindowUpdate(MAX_ID, Limits.MAX_WINDOW));
    frames.add(new Fin(1));
    frames.add(new Fin(MAX_ID));
    for (ErrorCode c : ErrorCode.values()) {
      frames.add(new Reset(9, c, "reset " + c));
      frames.add(new GoAway(c, 0, ""));
    }
    frames.add(new Reset(MAX_ID, ErrorCode.CANCEL, LONGEST_MESSAGE));
    frames.add(new GoAway(ErrorCode.NO_ERROR, MAX_ID, LONGEST_MESSAGE));
    return frames.stream();
  }

  @ParameterizedTest
  @MethodSource("controlFrames")
  void controlFrameSurvivesRoundTrip(Frame frame) {
    Frame decoded = roundTrip(frame);
    assertThat(decoded).isEqualTo(frame);
    assertThat(decoded.type()).isEqualTo(frame.type());
    assertThat(decoded.streamId()).isEqualTo(frame.streamId());
  }

  @ParameterizedTest
  @MethodSource("dataSizes")
  void dataFrameSurvivesRoundTrip(int size) {
    byte[] bytes = new byte[size];
    ThreadLocalRandom.current().nextBytes(bytes);
    for (int streamId : new int[] {1, MAX_ID}) {
      Frame decoded = roundTrip(new DataFrame(streamId, Unpooled.wrappedBuffer(bytes)));
      DataFrame data = (DataFrame) decoded;
      try {
        assertThat(data.streamId()).isEqualTo(streamId);
        assertThat(ByteBufUtil.getBytes(data.content())).isEqualTo(bytes);
      } finally {
        data.release();
      }
    }
  }

  static Stream<Integer> dataSizes() {
    return Stream.of(0, 1, 64, 16 * 1024, 64 * 1024, Limits.MAX_FRAME_PAYLOAD_CEILING);
  }

  @Test
  void decodedPayloadIsASliceOfTheReceivedMessageNotACopy() {
    byte[] raw = Wire.body().bytes(1, 2, 3, 4).frame(FrameType.DATA.code(), 5);
    ByteBuf received = Unpooled.buffer().writeBytes(raw);
    EmbeddedChannel ch = Wire.decoderChannel();
    ch.writeInbound(new BinaryWebSocketFrame(received));
    DataFrame data = ch.readInbound();
    try {
      // The websocket message was released by the decoder; the slice keeps its memory alive.
      assertThat(received.refCnt()).isEqualTo(1);
      received.setByte(Limits.HEADER_SIZE, 42);
      assertThat(data.content().getByte(data.content().readerIndex())).isEqualTo((byte) 42);
    } finally {
      data.release();
    }
    assertThat(received.refCnt()).isZero();
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  @Test
  void encodingDataWritesHeaderAndPayloadWithoutCopyingPayload() {
    ByteBuf payload = Unpooled.buffer(8).writeLong(0x0102030405060708L);
    EmbeddedChannel ch = new EmbeddedChannel(new FrameEncoder());
    ch.writeOutbound(new DataFrame(3, payload));
    BinaryWebSocketFrame out = ch.readOutbound();
    try {
      assertThat(out.content()).isInstanceOf(CompositeByteBuf.class);
      // The encoder released its DataFrame; the composite still holds the payload itself.
      assertThat(payload.refCnt()).isEqualTo(1);
      payload.setByte(0, 99);
      assertThat(out.content().getByte(Limits.HEADER_SIZE)).isEqualTo((byte) 99);
      assertThat(out.content().readableBytes()).isEqualTo(Limits.HEADER_SIZE + 8);
      assertThat(out.content().getUnsignedMedium(0)).isEqualTo(8);
      assertThat(out.content().getByte(3)).isEqualTo((byte) FrameType.DATA.code());
      assertThat(out.content().getInt(5)).isEqualTo(3);
    } finally {
      out.release();
    }
    assertThat(payload.refCnt()).isZero();
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  @Test
  void helloWithExtensionBytesFromALaterVersionIsAccepted() {
    AgentHello hello =
        new AgentHello(1, 2, 0, 65536, 65536, 10250, "node-a", List.of(ip("127.0.0.2")), List.of());
    ByteBuf encoded = FrameCodec.encode(Unpooled.buffer().alloc(), hello);
    ByteBuf extended = Unpooled.buffer().writeBytes(encoded).writeBytes(new byte[] {7, 7, 7});
    encoded.release();
    extended.setMedium(0, extended.readableBytes() - Limits.HEADER_SIZE);
    EmbeddedChannel ch = Wire.decoderChannel();
    ch.writeInbound(new BinaryWebSocketFrame(extended));
    assertThat((Frame) ch.readInbound()).isEqualTo(hello);
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  /**
   * The served networks are an extension after the version-1 fields: a reader that does not know
   * the capability (here: the bit cleared on the wire) reads the same hello without them.
   */
  @Test
  void servedNetworksAreAnExtensionThatAVersionOneReaderSkips() {
    AgentHello hello =
        new AgentHello(
            1,
            1,
            AgentHello.CAP_DEFAULT_ROUTE,
            65536,
            65536,
            10250,
            "site-gw",
            List.of(ip("127.0.0.2")),
            List.of(),
            List.of(Cidr.parse("192.168.50.0/24")),
            List.of("db.site.example"));
    assertThat(hello.capabilities())
        .isEqualTo(AgentHello.CAP_DEFAULT_ROUTE | AgentHello.CAP_SERVED_NETWORKS);
    assertThat(hello.offersDefaultRoute()).isTrue();
    ByteBuf encoded = FrameCodec.encode(Unpooled.buffer().alloc(), hello);
    encoded.setInt(Limits.HEADER_SIZE + 4, AgentHello.CAP_DEFAULT_ROUTE);
    EmbeddedChannel ch = Wire.decoderChannel();
    ch.writeInbound(new BinaryWebSocketFrame(encoded));
    assertThat((Frame) ch.readInbound())
        .isEqualTo(
            new AgentHello(
                1,
                1,
                AgentHello.CAP_DEFAULT_ROUTE,
                65536,
                65536,
                10250,
                "site-gw",
                List.of(ip("127.0.0.2")),
                List.of()));
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  @Test
  void pingPongAndCloseMessagesPassThroughUntouched() {
    EmbeddedChannel ch = Wire.decoderChannel();
    var ping =
        new io.netty.handler.codec.http.websocketx.PingWebSocketFrame(
            Unpooled.wrappedBuffer(new byte[] {1}));
    ch.writeInbound(ping);
    Object read = ch.readInbound();
    assertThat(read).isSameAs(ping);
    ping.release();
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  private static Frame roundTrip(Frame frame) {
    EmbeddedChannel out = new EmbeddedChannel(new FrameEncoder());
    assertThat(out.writeOutbound(frame)).isTrue();
    BinaryWebSocketFrame message = out.readOutbound();
    assertThat(out.finishAndReleaseAll()).isFalse();
    EmbeddedChannel in = Wire.decoderChannel();
    assertThat(in.writeInbound(message)).isTrue();
    Frame decoded = in.readInbound();
    // A decoded DATA payload is a slice that keeps the message's memory; nothing else may.
    assertThat(message.refCnt()).isEqualTo(decoded instanceof DataFrame ? 1 : 0);
    assertThat(in.finishAndReleaseAll()).isFalse();
    return decoded;
  }

  static InetAddress ip(String literal) {
    return Cidr.parseAddress(literal);
  }

  private static List<InetAddress> manyAddresses(int n) {
    List<InetAddress> out = new ArrayList<>();
    for (int i = 0; i < n; i++) {
      out.add(i % 2 == 0 ? ip("127.0.0." + (i + 1)) : ip("fd00::" + Integer.toHexString(i)));
    }
    return out;
  }

  private static List<Cidr> manyCidrs(int n) {
    List<Cidr> out = new ArrayList<>();
    out.add(Cidr.parse("0.0.0.0/0"));
    out.add(Cidr.parse("::/0"));
    out.add(Cidr.parse("127.0.0.1/32"));
    out.add(Cidr.parse("fd00::1/128"));
    for (int i = out.size(); i < n; i++) {
      out.add(i % 2 == 0 ? Cidr.parse("10." + i + ".0.0/16") : Cidr.parse("fd00:" + i + "::/48"));
    }
    return out;
  }
}
