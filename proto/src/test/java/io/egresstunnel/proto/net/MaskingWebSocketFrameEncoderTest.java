package io.egresstunnel.proto.net;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.CloseWebSocketFrame;
import io.netty.handler.codec.http.websocketx.ContinuationWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PingWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PongWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocket13FrameDecoder;
import io.netty.handler.codec.http.websocketx.WebSocketDecoderConfig;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import java.util.HashSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import java.util.function.Function;
import org.junit.jupiter.api.Test;

/**
 * Every frame {@link MaskingWebSocketFrameEncoder} writes is masked, under a fresh key, and Netty's
 * own decoder, which requires masked frames from a client, reads back exactly the frame that was
 * encoded: type, flags, length encoding at every boundary (0, 125, 126, 65535, 65536), and payloads
 * split into components at every phase of the key.
 */
class MaskingWebSocketFrameEncoderTest {
  private static final int[] LENGTHS = {
    0, 1, 3, 4, 7, 8, 9, 125, 126, 127, 1000, 65535, 65536, 65537, 262_144 + 13
  };

  @Test
  void everyLengthAndEveryComponentSplitDecodesToTheSameFrame() {
    Random r = new Random(6455);
    for (int length : LENGTHS) {
      for (int parts = 1; parts <= 5; parts++) {
        byte[] data = new byte[length];
        r.nextBytes(data);
        roundTrip(new BinaryWebSocketFrame(split(data, parts, r)), data);
      }
    }
  }

  @Test
  void everyFrameTypeKeepsItsTypeFinalFlagAndReservedBits() {
    byte[] text = "hello".getBytes(java.nio.charset.StandardCharsets.UTF_8);
    byte[] bytes = {1, 2, (byte) 0xff, 4, 5};
    byte[] close = {0x03, (byte) 0xe8, 'b', 'y', 'e'}; // 1000, "bye"
    record Kind(Function<ByteBuf, WebSocketFrame> make, byte[] payload) {}
    List<Kind> kinds =
        List.of(
            new Kind(b -> new TextWebSocketFrame(true, 0, b), text),
            new Kind(b -> new BinaryWebSocketFrame(false, 0, b), bytes),
            new Kind(b -> new ContinuationWebSocketFrame(true, 0, b), bytes),
            new Kind(PingWebSocketFrame::new, bytes),
            new Kind(PongWebSocketFrame::new, bytes),
            new Kind(b -> new CloseWebSocketFrame(true, 0, b), close));
    // one pair of channels: the continuation continues the unfinished binary frame before it
    EmbeddedChannel encoder = new EmbeddedChannel(new MaskingWebSocketFrameEncoder());
    EmbeddedChannel decoder = decoder();
    for (Kind kind : kinds) {
      roundTrip(
          encoder,
          decoder,
          kind.make().apply(Unpooled.wrappedBuffer(kind.payload().clone())),
          kind.payload());
    }
    assertThat(encoder.finishAndReleaseAll()).isFalse();
    assertThat(decoder.finishAndReleaseAll()).isFalse();
  }

  @Test
  void eachFrameIsMaskedUnderItsOwnKey() {
    EmbeddedChannel ch = new EmbeddedChannel(new MaskingWebSocketFrameEncoder());
    Set<Integer> keys = new HashSet<>();
    byte[] zeros = new byte[64];
    for (int i = 0; i < 32; i++) {
      ch.writeOutbound(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(zeros)));
      ByteBuf wire = ch.readOutbound();
      try {
        assertThat(wire.getByte(1) & 0x80).as("mask bit").isEqualTo(0x80);
        int key = wire.getInt(2);
        keys.add(key);
        // zeros XOR the key is the key, repeated: the payload on the wire is not the plaintext
        for (int j = 0; j < 64; j += 4) {
          assertThat(wire.getInt(6 + j)).isEqualTo(key);
        }
      } finally {
        wire.release();
      }
    }
    assertThat(keys).hasSizeGreaterThan(30);
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  private static EmbeddedChannel decoder() {
    return new EmbeddedChannel(
        new WebSocket13FrameDecoder(
            WebSocketDecoderConfig.newBuilder()
                .expectMaskedFrames(true)
                .allowMaskMismatch(false)
                .allowExtensions(true)
                .maxFramePayloadLength(1 << 20)
                .build()));
  }

  private static void roundTrip(WebSocketFrame frame, byte[] expected) {
    EmbeddedChannel encoder = new EmbeddedChannel(new MaskingWebSocketFrameEncoder());
    EmbeddedChannel decoder = decoder();
    roundTrip(encoder, decoder, frame, expected);
    assertThat(encoder.finishAndReleaseAll()).isFalse();
    assertThat(decoder.finishAndReleaseAll()).isFalse();
  }

  private static void roundTrip(
      EmbeddedChannel encoder, EmbeddedChannel decoder, WebSocketFrame frame, byte[] expected) {
    Class<?> type = frame.getClass();
    boolean fin = frame.isFinalFragment();
    int rsv = frame.rsv();
    assertThat(encoder.writeOutbound(frame)).isTrue();
    ByteBuf wire = encoder.readOutbound();
    assertThat(wire.getByte(1) & 0x80).as("mask bit").isEqualTo(0x80);
    decoder.writeInbound(wire);
    WebSocketFrame decoded = decoder.readInbound();
    try {
      assertThat(decoded).as("frame of %d bytes", expected.length).isInstanceOf(type);
      assertThat(decoded.isFinalFragment()).isEqualTo(fin);
      assertThat(decoded.rsv()).isEqualTo(rsv);
      assertThat(ByteBufUtil.getBytes(decoded.content())).isEqualTo(expected);
    } finally {
      decoded.release();
    }
  }

  /** {@code data} as a composite of {@code parts} direct and heap components of random sizes. */
  private static ByteBuf split(byte[] data, int parts, Random r) {
    CompositeByteBuf c = Unpooled.compositeBuffer(parts);
    int at = 0;
    for (int i = 0; i < parts; i++) {
      int n = i == parts - 1 ? data.length - at : r.nextInt(data.length - at + 1);
      ByteBuf part = i % 2 == 0 ? Unpooled.directBuffer(n) : Unpooled.buffer(n);
      part.writeBytes(data, at, n);
      c.addComponent(true, part);
      at += n;
    }
    return c;
  }
}
