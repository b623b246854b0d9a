package io.egresstunnel.proto;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.testing.LeakCheck;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.atomic.AtomicLong;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;
import net.jqwik.api.ShrinkingMode;
import net.jqwik.api.Tuple;
import net.jqwik.api.lifecycle.AfterContainer;

/**
 * Feeds 100,000 generated messages to {@link FrameDecoder}: raw random bytes, well-framed messages
 * with random bodies, and valid frames with random mutations. Only a frame or a documented {@link
 * ProtocolException} may come out; every frame that decodes re-encodes to the same bytes; nothing
 * leaks.
 */
class FrameDecoderFuzzProperties {
  private static final int MAX_PAYLOAD = Limits.MIN_FRAME_PAYLOAD_FLOOR;
  private static final ByteBufAllocator ALLOC = PooledByteBufAllocator.DEFAULT;
  private static final AtomicLong DECODED = new AtomicLong();
  private static final Map<ProtocolError, AtomicLong> ERRORS = new EnumMap<>(ProtocolError.class);

  static {
    for (ProtocolError e : ProtocolError.values()) {
      ERRORS.put(e, new AtomicLong());
    }
  }

  private static final List<Frame> SAMPLES =
      List.of(
          new AgentHello(
              1,
              1,
              0,
              65536,
              65536,
              10250,
              "node-a",
              List.of(Cidr.parseAddress("127.0.0.2"), Cidr.parseAddress("fd00::2")),
              List.of(Cidr.parse("10.42.0.0/24"), Cidr.parse("fd00:42::/64"))),
          new ServerHello(1, 0, 262144, 65536, 10000, 2, "server-1"),
          new Dial(5, 10000, "10.42.0.7", 8443),
          new DialResult(5, DialStatus.REFUSED, "connection refused"),
          new WindowUpdate(5, 65536),
          new Fin(5),
          new Reset(5, ErrorCode.CANCEL, "client went away"),
          new GoAway(ErrorCode.NO_ERROR, 41, "draining"));

  @Property(tries = 100_000, shrinking = ShrinkingMode.OFF)
  void decoderYieldsAFrameOrADocumentedProtocolError(@ForAll("messages") byte[] input) {
    EmbeddedChannel ch = new EmbeddedChannel(new FrameDecoder(MAX_PAYLOAD));
    ByteBuf content = ALLOC.directBuffer(input.length).writeBytes(input);
    BinaryWebSocketFrame message = new BinaryWebSocketFrame(content);
    Frame frame = null;
    try {
      ch.writeInbound(message);
      frame = ch.readInbound();
      assertThat(frame).isNotNull();
      DECODED.incrementAndGet();
      assertReencodesToInput(frame, input);
    } catch (ProtocolException e) {
      ERRORS.get(e.error()).incrementAndGet();
      assertThat(e.getMessage()).isNotBlank();
      if (e.isStreamError()) {
        // A stream error is only raised once the header was sound: a stream frame on its stream.
        FrameType type = FrameType.fromCode(input[3] & 0xFF);
        assertThat(type).isNotNull();
        assertThat(type.streamScoped()).isTrue();
        assertThat(e.streamId()).isEqualTo(Unpooled.wrappedBuffer(input).getInt(5));
      }
    } finally {
      if (frame instanceof DataFrame data) {
        data.release();
      }
      assertThat(content.refCnt()).as("the message is released").isZero();
      assertThat(ch.finishAndReleaseAll()).isFalse();
    }
  }

  @AfterContainer
  static void everyOutcomeWasReachedAndNothingLeaked() {
    LeakCheck.assertNoLeaks();
    // The generators reach deep: frames decode, and every header and body check fires.
    assertThat(DECODED.get()).isGreaterThan(10_000);
    for (ProtocolError e : ProtocolError.values()) {
      if (e != ProtocolError.INVALID_MESSAGE) { // text/fragmented: covered by MalformedFrameTest
        assertThat(ERRORS.get(e).get()).as("occurrences of " + e).isPositive();
      }
    }
  }

  private static void assertReencodesToInput(Frame frame, byte[] input) {
    ByteBuf encoded = FrameCodec.encode(ALLOC, frame);
    try {
      byte[] again = ByteBufUtil.getBytes(encoded);
      if (frame instanceof AgentHello || frame instanceof ServerHello) {
        // Hellos may carry extension bytes after the version-1 fields; those are dropped.
        assertThat(Arrays.copyOfRange(input, Limits.HEADER_SIZE, again.length))
            .isEqualTo(Arrays.copyOfRange(again, Limits.HEADER_SIZE, again.length));
      } else {
        assertThat(again).isEqualTo(input);
      }
    } finally {
      encoded.release();
    }
  }

  @Provide
  Arbitrary<byte[]> messages() {
    Arbitrary<byte[]> raw = Arbitraries.bytes().array(byte[].class).ofMaxSize(48);
    Arbitrary<byte[]> wellFramed = Arbitraries.randomValue(FrameDecoderFuzzProperties::wellFramed);
    Arbitrary<byte[]> mutated = Arbitraries.randomValue(FrameDecoderFuzzProperties::mutatedSample);
    return Arbitraries.frequencyOf(Tuple.of(1, raw), Tuple.of(3, wellFramed), Tuple.of(6, mutated));
  }

  /** A header whose length is right, a type near the defined range, and a random body. */
  private static byte[] wellFramed(Random r) {
    int bodyLength = r.nextInt(10) == 0 ? MAX_PAYLOAD + 1 + r.nextInt(4) : r.nextInt(64);
    ByteBuf b = Unpooled.buffer();
    b.writeMedium(bodyLength);
    b.writeByte(r.nextInt(12));
    b.writeByte(r.nextInt(20) == 0 ? 1 << r.nextInt(8) : 0);
    int id =
        switch (r.nextInt(4)) {
          case 0 -> 0;
          case 1 -> 1;
          case 2 -> r.nextInt();
          default -> r.nextInt(Integer.MAX_VALUE);
        };
    b.writeInt(id);
    byte[] body = new byte[bodyLength];
    r.nextBytes(body);
    b.writeBytes(body);
    return ByteBufUtil.getBytes(b);
  }

  /** A valid frame with a few random byte changes, truncations or extensions. */
  private static byte[] mutatedSample(Random r) {
    Frame sample = SAMPLES.get(r.nextInt(SAMPLES.size()));
    ByteBuf encoded = FrameCodec.encode(Unpooled.buffer().alloc(), sample);
    byte[] bytes = ByteBufUtil.getBytes(encoded);
    encoded.release();
    int mutations = r.nextInt(4); // 0: the valid frame itself
    for (int i = 0; i < mutations; i++) {
      switch (r.nextInt(5)) {
        case 0, 1 -> {
          int at = Limits.HEADER_SIZE + r.nextInt(Math.max(1, bytes.length - Limits.HEADER_SIZE));
          if (at < bytes.length) {
            bytes[at] = (byte) r.nextInt(256);
          }
        }
        case 2 -> bytes = Arrays.copyOf(bytes, Math.max(0, bytes.length - 1 - r.nextInt(4)));
        case 3 -> bytes = Arrays.copyOf(bytes, bytes.length + 1 + r.nextInt(4));
        default -> {
          if (bytes.length > 0) {
            bytes[r.nextInt(Math.min(Limits.HEADER_SIZE, bytes.length))] ^=
                (byte) (1 << r.nextInt(8));
          }
        }
      }
      if (r.nextBoolean() && bytes.length >= Limits.HEADER_SIZE) {
        int length = bytes.length - Limits.HEADER_SIZE; // keep the length field truthful
        bytes[0] = (byte) (length >>> 16);
        bytes[1] = (byte) (length >>> 8);
        bytes[2] = (byte) length;
      }
    }
    return bytes;
  }
}
