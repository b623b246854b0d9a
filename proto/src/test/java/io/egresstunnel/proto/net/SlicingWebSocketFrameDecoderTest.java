package io.egresstunnel.proto.net;

import static org.assertj.core.api.Assertions.assertThat;

import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.ByteBufUtil;
import io.netty.buffer.CompositeByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.CloseWebSocketFrame;
import io.netty.handler.codec.http.websocketx.ContinuationWebSocketFrame;
import io.netty.handler.codec.http.websocketx.CorruptedWebSocketFrameException;
import io.netty.handler.codec.http.websocketx.PingWebSocketFrame;
import io.netty.handler.codec.http.websocketx.PongWebSocketFrame;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocket08FrameDecoder;
import io.netty.handler.codec.http.websocketx.WebSocket08FrameEncoder;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolConfig;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolHandler;
import io.netty.handler.codec.http.websocketx.WebSocketDecoderConfig;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolConfig;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolHandler;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@link SlicingWebSocketFrameDecoder} against Netty's {@link WebSocket08FrameDecoder} on the same
 * bytes, split every way: the same frames, errors, close frames and channel state. Then what only
 * ours does: payloads that are the received memory, unmasked in place, never written when the read
 * is not exclusively ours, and copied when a slice would pin too much.
 */
class SlicingWebSocketFrameDecoderTest {
  private static final ByteBufAllocator ALLOC = PooledByteBufAllocator.DEFAULT;
  private static final int MAX_PAYLOAD = 320 * 1024;

  // ---- differential: the same outcome as Netty's decoder

  @Test
  void randomFrameStreamsDecodeAsNettyDecodesThem() {
    for (int seed = 0; seed < 160; seed++) {
      Random r = new Random(seed * 0x9E3779B97F4A7C15L); // consecutive seeds start alike
      boolean masked = r.nextBoolean();
      boolean extensions = r.nextInt(4) == 0;
      WebSocketDecoderConfig config =
          WebSocketDecoderConfig.newBuilder()
              .expectMaskedFrames(masked)
              .allowExtensions(extensions)
              .allowMaskMismatch(r.nextBoolean())
              .maxFramePayloadLength(MAX_PAYLOAD)
              .build();
      int pinFactor = new int[] {1, 2, 8, Integer.MAX_VALUE}[r.nextInt(4)];
      byte[] wire = encode(masked, randomMessages(r, extensions));
      for (Split split : Split.values()) {
        if (split == Split.BYTES && wire.length > 16 * 1024) {
          continue;
        }
        long splitSeed = r.nextLong();
        Outcome netty = run(new WebSocket08FrameDecoder(config), chunks(wire, split, splitSeed));
        Outcome ours =
            run(
                new SlicingWebSocketFrameDecoder(config, pinFactor),
                chunks(wire, split, splitSeed));
        assertThat(ours)
            .as("seed %d, %s, pin factor %d, %d bytes", seed, split, pinFactor, wire.length)
            .isEqualTo(netty);
        assertThat(ours.error()).isNull();
      }
    }
  }

  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void everySplitPointOfAFrameStreamDecodesAsNetty(boolean masked) {
    WebSocketDecoderConfig config = config(masked, MAX_PAYLOAD);
    byte[] wire =
        encode(
            masked,
            List.of(
                new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(1, 3))),
                new PingWebSocketFrame(Unpooled.wrappedBuffer(bytes(2, 5))),
                new TextWebSocketFrame(false, 0, Unpooled.wrappedBuffer(bytes(3, 126))),
                new ContinuationWebSocketFrame(true, 0, Unpooled.wrappedBuffer(bytes(4, 0))),
                new PongWebSocketFrame(Unpooled.EMPTY_BUFFER),
                new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(5, 130))),
                new CloseWebSocketFrame(1000, "bye")));
    Outcome expected = run(new WebSocket08FrameDecoder(config), chunks(wire, Split.ONE, 0));
    assertThat(expected.inbound()).hasSize(7);
    for (int at = 1; at < wire.length; at++) {
      List<ByteBuf> two =
          List.of(
              ALLOC.directBuffer(at).writeBytes(wire, 0, at),
              ALLOC.directBuffer(wire.length - at).writeBytes(wire, at, wire.length - at));
      assertThat(run(new SlicingWebSocketFrameDecoder(config), two))
          .as("split at %d", at)
          .isEqualTo(expected);
    }
    assertThat(run(new SlicingWebSocketFrameDecoder(config), chunks(wire, Split.BYTES, 0)))
        .isEqualTo(expected);
  }

  @ParameterizedTest
  @ValueSource(ints = {0, 1, 125, 126, 127, 65535, 65536, 65537, 300 * 1024})
  void everyLengthEncodingDecodesAsNetty(int size) {
    for (boolean masked : new boolean[] {false, true}) {
      WebSocketDecoderConfig config = config(masked, MAX_PAYLOAD);
      byte[] wire =
          encode(masked, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(7, size)))));
      for (Split split : new Split[] {Split.ONE, Split.RANDOM}) {
        Outcome netty = run(new WebSocket08FrameDecoder(config), chunks(wire, split, size));
        assertThat(run(new SlicingWebSocketFrameDecoder(config), chunks(wire, split, size)))
            .isEqualTo(netty);
        assertThat(netty.inbound()).hasSize(1);
      }
    }
  }

  @Test
  void tinyReadsOfALargeFrameAreMergedAndDecodeAsNetty() {
    WebSocketDecoderConfig config = config(true, MAX_PAYLOAD);
    byte[] wire =
        encode(
            true, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(9, 70 * 1024)))));
    // Reads of one byte without spare room: the queue is merged every MAX_QUEUED_BUFFERS reads.
    Supplier<List<ByteBuf>> oneByteReads =
        () -> {
          List<ByteBuf> reads = new ArrayList<>();
          for (byte b : wire) {
            reads.add(Unpooled.wrappedBuffer(new byte[] {b}));
          }
          return reads;
        };
    Outcome netty = run(new WebSocket08FrameDecoder(config), oneByteReads.get());
    assertThat(run(new SlicingWebSocketFrameDecoder(config), oneByteReads.get())).isEqualTo(netty);
    assertThat(netty.inbound()).hasSize(1);
  }

  // ---- protocol errors: the same exception, close frame and closed channel as Netty's

  static Stream<Arguments> violations() {
    return Stream.of(
        Arguments.of("reserved bit RSV1", server(), hex("c2 80 00000000"), 1002),
        Arguments.of("reserved bits RSV2+RSV3", server(), hex("b2 80 00000000"), 1002),
        Arguments.of("reserved data opcode 3", server(), hex("83 80 00000000"), 1002),
        Arguments.of("reserved data opcode 7", server(), hex("87 80 00000000"), 1002),
        Arguments.of("reserved control opcode 0xB", server(), hex("8b 80 00000000"), 1002),
        Arguments.of("reserved control opcode 0xF", server(), hex("8f 80 00000000"), 1002),
        Arguments.of("control frame of 126 bytes", server(), hex("89 fe 007e"), 1002),
        Arguments.of("fragmented ping", server(), hex("09 80 00000000"), 1002),
        Arguments.of("unmasked frame to a server", strictServer(), hex("82 00"), 1002),
        Arguments.of("masked frame to a client", strictClient(), hex("82 80 01020304"), 1002),
        Arguments.of("payload over the limit", limited(1000), hex("82 fe 03e9"), 1009),
        Arguments.of(
            "64-bit payload over the limit", limited(1000), hex("82 ff 0000000000010000"), 1009),
        Arguments.of("continuation outside a message", server(), hex("80 80 00000000"), 1002),
        Arguments.of(
            "binary inside a fragmented message",
            server(),
            hex("02 80 00000000 82 80 00000000"),
            1002),
        Arguments.of("16-bit length under 126", server(), hex("82 fe 007d"), 1002),
        Arguments.of("64-bit length under 65536", server(), hex("82 ff 000000000000ffff"), 1002),
        Arguments.of("negative 64-bit length", server(), hex("82 ff 8000000000000000"), 1002),
        Arguments.of("close with a 1-byte body", server(), hex("88 81 00000000 03"), 1002),
        Arguments.of("close with status 999", server(), hex("88 82 00000000 03e7"), 1002),
        Arguments.of("close with status 1005", server(), hex("88 82 00000000 03ed"), 1002),
        Arguments.of(
            "close with a reason not UTF-8", server(), hex("88 84 00000000 03e8 fffe"), 1007),
        Arguments.of(
            "close with a surrogate in its reason",
            server(),
            hex("88 85 00000000 03e8 eda080"),
            1007),
        Arguments.of(
            "error after good frames in the same read",
            server(),
            hex("82 81 00000000 2a 89 80 00000000 c2 80 00000000"),
            1002),
        Arguments.of(
            "error without closing",
            WebSocketDecoderConfig.newBuilder().closeOnProtocolViolation(false).build(),
            hex("83 80 00000000"),
            1002));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("violations")
  void protocolViolationsAreAnsweredAsNettyAnswersThem(
      String name, WebSocketDecoderConfig config, byte[] wire, int status) {
    for (Split split : new Split[] {Split.ONE, Split.BYTES}) {
      Outcome netty = run(new WebSocket08FrameDecoder(config), chunks(wire, split, 1));
      Outcome ours = run(new SlicingWebSocketFrameDecoder(config), chunks(wire, split, 1));
      assertThat(ours).as(split.name()).isEqualTo(netty);
      assertThat(ours.error())
          .startsWith("CorruptedWebSocketFrameException")
          .endsWith("status=" + status);
      if (config.closeOnProtocolViolation()) {
        assertThat(ours.open()).isFalse();
        assertThat(ours.outbound()).hasSize(1);
      } else {
        assertThat(ours.open()).isTrue();
        assertThat(ours.outbound()).isEmpty();
      }
    }
  }

  @Test
  void aTooLongPayloadIsRefusedWith1009BeforeItsBytesArrive() {
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(limited(1000)));
    Outcome o = run(ch, List.of(Unpooled.wrappedBuffer(hex("82 fe 03e9"))));
    assertThat(o.error())
        .isEqualTo(
            "CorruptedWebSocketFrameException: Max frame length of 1000 has been exceeded."
                + " status=1009");
    assertThat(o.outbound())
        .containsExactly("close 1009 Max frame length of 1000 has been exceeded.");
    assertThat(o.open()).isFalse();
  }

  @Test
  void aMaskMismatchIsAcceptedWhenAllowed() {
    WebSocketDecoderConfig lenient =
        WebSocketDecoderConfig.newBuilder()
            .expectMaskedFrames(true)
            .allowMaskMismatch(true)
            .build();
    byte[] wire = hex("82 03 010203");
    Outcome netty = run(new WebSocket08FrameDecoder(lenient), chunks(wire, Split.ONE, 0));
    assertThat(run(new SlicingWebSocketFrameDecoder(lenient), chunks(wire, Split.ONE, 0)))
        .isEqualTo(netty);
    assertThat(netty.inbound()).hasSize(1);
    assertThat(netty.error()).isNull();
  }

  @Test
  void aCloseReasonCutShortAtItsEndPassesAsInNetty() {
    byte[] wire = hex("88 83 00000000 03e8 c3"); // Netty does not finish its UTF-8 check
    Outcome netty = run(new WebSocket08FrameDecoder(server()), chunks(wire, Split.ONE, 0));
    assertThat(run(new SlicingWebSocketFrameDecoder(server()), chunks(wire, Split.ONE, 0)))
        .isEqualTo(netty);
    assertThat(netty.error()).isNull();
  }

  @Test
  void everythingAfterACloseFrameIsDiscarded() {
    byte[] wire =
        encode(
            true,
            List.of(
                new CloseWebSocketFrame(1001, "going"),
                new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(1, 100))),
                new PingWebSocketFrame(Unpooled.EMPTY_BUFFER)));
    for (Split split : Split.values()) {
      Outcome netty = run(new WebSocket08FrameDecoder(server()), chunks(wire, split, 3));
      Outcome ours = run(new SlicingWebSocketFrameDecoder(server()), chunks(wire, split, 3));
      assertThat(ours).isEqualTo(netty);
      assertThat(ours.inbound()).containsExactly("close 1001 going");
    }
  }

  @Test
  void closeUtf8CheckFollowsUnicodeTable3_7() {
    assertThat(utf8("")).isTrue();
    assertThat(utf8("41 c3a9 e282ac f09f9880")).isTrue();
    assertThat(utf8("ed9fbf ee8080 f48fbfbf")).isTrue();
    assertThat(utf8("c0af")).isFalse(); // overlong
    assertThat(utf8("e080af")).isFalse(); // overlong
    assertThat(utf8("eda080")).isFalse(); // surrogate
    assertThat(utf8("f4908080")).isFalse(); // above U+10FFFF
    assertThat(utf8("f5")).isFalse();
    assertThat(utf8("80")).isFalse();
    assertThat(utf8("e282")).isTrue(); // cut short at the end
  }

  // ---- zero copy

  @Test
  void anUnmaskedPayloadIsASliceOfTheReadItArrivedIn() {
    byte[] payload = bytes(11, 100 * 1024);
    byte[] wire = encode(false, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(payload))));
    int header = wire.length - payload.length;
    ByteBuf read = ALLOC.directBuffer(wire.length).writeBytes(wire);
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(client()));
    ch.writeInbound(read);
    BinaryWebSocketFrame frame = ch.readInbound();
    try {
      assertThat(frame.content().readerIndex()).isZero(); // as in a copy
      assertThat(ByteBufUtil.getBytes(frame.content())).isEqualTo(payload);
      // The frame keeps the read alive; a write to the read is visible in the payload.
      for (int i : new int[] {0, 4095, payload.length - 1}) {
        read.setByte(header + i, ~payload[i]);
        assertThat(frame.content().getByte(i)).isEqualTo((byte) ~payload[i]);
      }
    } finally {
      frame.release();
      assertThat(ch.finishAndReleaseAll()).isFalse();
    }
  }

  @Test
  void aMaskedPayloadIsUnmaskedInPlace() {
    byte[] payload = bytes(12, 100 * 1024 + 3);
    byte[] wire = encode(true, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(payload))));
    int header = wire.length - payload.length;
    ByteBuf read = ALLOC.directBuffer(wire.length).writeBytes(wire);
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(server()));
    ch.writeInbound(read);
    BinaryWebSocketFrame frame = ch.readInbound();
    try {
      assertThat(ByteBufUtil.getBytes(frame.content())).isEqualTo(payload);
      assertThat(ByteBufUtil.getBytes(read, header, payload.length)).isEqualTo(payload);
      read.setByte(header + 17, ~payload[17]);
      assertThat(frame.content().getByte(17)).isEqualTo((byte) ~payload[17]);
    } finally {
      frame.release();
      assertThat(ch.finishAndReleaseAll()).isFalse();
    }
  }

  @ParameterizedTest
  @ValueSource(booleans = {false, true})
  void aPayloadOverSeveralReadsIsACompositeOfThem(boolean masked) {
    byte[] payload = bytes(13, 256 * 1024);
    byte[] wire =
        encode(masked, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(payload))));
    int header = wire.length - payload.length;
    int[] cuts = {0, header + 1001, header + 150_002, wire.length}; // pieces at odd mask phases
    ByteBuf[] reads = new ByteBuf[3];
    EmbeddedChannel ch =
        new EmbeddedChannel(new SlicingWebSocketFrameDecoder(config(masked, 1 << 20)));
    for (int i = 0; i < 3; i++) {
      reads[i] =
          ALLOC
              .directBuffer(cuts[i + 1] - cuts[i])
              .writeBytes(wire, cuts[i], cuts[i + 1] - cuts[i]);
      ch.writeInbound(reads[i]);
    }
    BinaryWebSocketFrame frame = ch.readInbound();
    try {
      assertThat(frame.content()).isInstanceOf(CompositeByteBuf.class);
      assertThat(ByteBufUtil.getBytes(frame.content())).isEqualTo(payload);
      for (int i = 0; i < 3; i++) {
        int at = Math.max(cuts[i], header) + 5; // wire offset inside read i
        int p = at - header;
        reads[i].setByte(at - cuts[i], ~payload[p]);
        assertThat(frame.content().getByte(p)).isEqualTo((byte) ~payload[p]);
      }
    } finally {
      frame.release();
      assertThat(ch.finishAndReleaseAll()).isFalse();
    }
  }

  @Test
  void aReadOnlyReadIsNeverWrittenToAndAMaskedPayloadInItIsCopied() {
    byte[] payload = bytes(14, 40 * 1024);
    byte[] wire = encode(true, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(payload))));
    byte[] memory = wire.clone();
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(server()));
    ch.writeInbound(Unpooled.wrappedBuffer(memory).asReadOnly());
    BinaryWebSocketFrame frame = ch.readInbound();
    assertThat(ByteBufUtil.getBytes(frame.content())).isEqualTo(payload);
    frame.release();
    assertThat(memory).isEqualTo(wire);
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  @Test
  void aSharedReadIsNeverWrittenToAndAMaskedPayloadInItIsCopied() {
    byte[] payload = bytes(15, 40 * 1024);
    byte[] wire = encode(true, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(payload))));
    ByteBuf read = ALLOC.heapBuffer(wire.length).writeBytes(wire);
    read.retain(); // someone else holds it too
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(server()));
    ch.writeInbound(read);
    BinaryWebSocketFrame frame = ch.readInbound();
    try {
      assertThat(ByteBufUtil.getBytes(frame.content())).isEqualTo(payload);
      assertThat(ByteBufUtil.getBytes(read, 0, wire.length)).isEqualTo(wire);
    } finally {
      frame.release();
      read.release();
      assertThat(ch.finishAndReleaseAll()).isFalse();
    }
  }

  @Test
  void anExclusiveHeapReadIsUnmaskedInPlaceToo() {
    byte[] payload = bytes(16, 40 * 1024);
    byte[] wire = encode(true, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(payload))));
    int header = wire.length - payload.length;
    byte[] memory = wire.clone();
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(server()));
    ch.writeInbound(Unpooled.wrappedBuffer(memory));
    BinaryWebSocketFrame frame = ch.readInbound();
    assertThat(ByteBufUtil.getBytes(frame.content())).isEqualTo(payload);
    assertThat(Arrays.copyOfRange(memory, header, memory.length)).isEqualTo(payload);
    frame.release();
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  @Test
  void aSmallPayloadInALargeReadIsCopiedUnlessThePinFactorAllowsIt() {
    byte[] payload = bytes(17, 1000);
    byte[] wire = encode(false, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(payload))));
    int header = wire.length - payload.length;
    for (int factor : new int[] {SlicingWebSocketFrameDecoder.DEFAULT_MAX_PIN_FACTOR, 128}) {
      ByteBuf read = ALLOC.directBuffer(64 * 1024).writeBytes(wire); // 64 KiB pinned by 1000 bytes
      EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(client(), factor));
      ch.writeInbound(read);
      BinaryWebSocketFrame frame = ch.readInbound();
      boolean sliced = factor * payload.length >= read.capacity();
      if (sliced) {
        read.setByte(header, ~payload[0]);
      }
      assertThat(frame.content().getByte(0)).isEqualTo(sliced ? (byte) ~payload[0] : payload[0]);
      frame.release();
      assertThat(ch.finishAndReleaseAll()).isFalse();
    }
  }

  // ---- lifecycle

  @Test
  void removedMidFrameItPassesTheRestOnFromTheStartOfThatFrame() {
    byte[] first =
        encode(true, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(1, 10)))));
    byte[] second =
        encode(true, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(2, 5000)))));
    byte[] wire = concat(first, second);
    int cut = first.length + 3000; // the second frame's header and part of its payload
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(server()));
    ch.writeInbound(ALLOC.directBuffer().writeBytes(first));
    ch.writeInbound(ALLOC.directBuffer().writeBytes(wire, first.length, cut - first.length));
    WebSocketFrame decoded = ch.readInbound();
    decoded.release();
    ch.pipeline().removeFirst();
    ch.writeInbound(ALLOC.directBuffer().writeBytes(wire, cut, wire.length - cut));
    ByteBuf rest = Unpooled.buffer();
    for (ByteBuf b; (b = ch.readInbound()) != null; ) {
      rest.writeBytes(b);
      b.release();
    }
    assertThat(ByteBufUtil.getBytes(rest)).isEqualTo(second);
    assertThat(ch.finishAndReleaseAll()).isFalse();
  }

  @Test
  void removedByAHandlerDownstreamItPassesTheUndecodedBytesOn() {
    byte[] wire =
        encode(
            false,
            List.of(
                new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(1, 10))),
                new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(2, 20)))));
    ChannelHandler remover =
        new ChannelInboundHandlerAdapter() {
          @Override
          public void channelRead(ChannelHandlerContext ctx, Object msg) {
            boolean frame = msg instanceof WebSocketFrame;
            ctx.fireChannelRead(msg);
            if (frame) {
              ctx.pipeline().remove(SlicingWebSocketFrameDecoder.class);
            }
          }
        };
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(client()), remover);
    ch.writeInbound(ALLOC.directBuffer().writeBytes(wire));
    List<Object> in = new ArrayList<>();
    for (Object o; (o = ch.readInbound()) != null; ) {
      in.add(o);
    }
    try {
      assertThat(in).hasSize(2);
      assertThat(in.get(0)).isInstanceOf(BinaryWebSocketFrame.class);
      assertThat(ByteBufUtil.getBytes((ByteBuf) in.get(1)))
          .isEqualTo(Arrays.copyOfRange(wire, 12, wire.length));
    } finally {
      in.forEach(io.netty.util.ReferenceCountUtil::release);
      assertThat(ch.finishAndReleaseAll()).isFalse();
    }
  }

  @Test
  void aPartialFrameIsReleasedWhenTheChannelCloses() {
    byte[] wire =
        encode(true, List.of(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(bytes(3, 9000)))));
    EmbeddedChannel ch = new EmbeddedChannel(new SlicingWebSocketFrameDecoder(server()));
    ch.writeInbound(ALLOC.directBuffer().writeBytes(wire, 0, 5000));
    ch.writeInbound(ALLOC.directBuffer().writeBytes(wire, 5000, 1000));
    assertThat(ch.finishAndReleaseAll()).isFalse(); // the leak check fails the test otherwise
  }

  // ---- installing it in place of Netty's decoders after a real handshake

  @Test
  void itReplacesNettysDecodersOnBothSidesOfAHandshake() {
    WebSocketDecoderConfig serverDecoder =
        WebSocketDecoderConfig.newBuilder()
            .maxFramePayloadLength(MAX_PAYLOAD)
            .allowMaskMismatch(true)
            .build();
    EmbeddedChannel server =
        new EmbeddedChannel(
            new HttpServerCodec(),
            new HttpObjectAggregator(8192),
            SlicingWebSocketFrameDecoder.serverInstaller(serverDecoder),
            new WebSocketServerProtocolHandler(
                WebSocketServerProtocolConfig.newBuilder()
                    .websocketPath("/v1/tunnel")
                    .decoderConfig(serverDecoder)
                    .build()));
    WebSocketDecoderConfig clientDecoder =
        WebSocketDecoderConfig.newBuilder()
            .expectMaskedFrames(false)
            .maxFramePayloadLength(MAX_PAYLOAD)
            .allowMaskMismatch(true)
            .build();
    ChannelHandler upgradeWatch =
        new ChannelInboundHandlerAdapter() {
          @Override
          public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt
                == WebSocketClientProtocolHandler.ClientHandshakeStateEvent.HANDSHAKE_COMPLETE) {
              SlicingWebSocketFrameDecoder.replaceStockDecoder(ctx.pipeline(), clientDecoder);
            }
            ctx.fireUserEventTriggered(evt);
          }
        };
    EmbeddedChannel client =
        new EmbeddedChannel(
            new HttpClientCodec(),
            new HttpObjectAggregator(8192),
            new WebSocketClientProtocolHandler(
                WebSocketClientProtocolConfig.newBuilder()
                    .webSocketUri("ws://127.0.0.1/v1/tunnel")
                    .maxFramePayloadLength(MAX_PAYLOAD)
                    .allowMaskMismatch(true)
                    .build()),
            upgradeWatch);
    try {
      shuttle(client, server); // the upgrade request
      shuttle(server, client); // 101
      assertThat(server.pipeline().get("wsdecoder"))
          .isInstanceOf(SlicingWebSocketFrameDecoder.class);
      assertThat(client.pipeline().get("ws-decoder"))
          .isInstanceOf(SlicingWebSocketFrameDecoder.class);
      assertThat(server.pipeline().get(WebSocket08FrameDecoder.class)).isNull();
      assertThat(client.pipeline().get(WebSocket08FrameDecoder.class)).isNull();

      byte[] up = bytes(21, 200 * 1024);
      client.writeAndFlush(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(up))); // masked
      shuttle(client, server);
      BinaryWebSocketFrame atServer = server.readInbound();
      assertThat(ByteBufUtil.getBytes(atServer.content())).isEqualTo(up);
      atServer.release();

      byte[] down = bytes(22, 200 * 1024);
      server.writeAndFlush(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(down)));
      shuttle(server, client);
      BinaryWebSocketFrame atClient = client.readInbound();
      assertThat(ByteBufUtil.getBytes(atClient.content())).isEqualTo(down);
      atClient.release();

      client.writeAndFlush(new CloseWebSocketFrame(1000, "done"));
      shuttle(client, server);
      assertThat(server.isOpen()).isFalse(); // Netty's protocol handler answered the close
    } finally {
      server.finishAndReleaseAll();
      client.finishAndReleaseAll();
    }
  }

  // ---- support

  private static void shuttle(EmbeddedChannel from, EmbeddedChannel to) {
    from.runPendingTasks();
    for (Object o; (o = from.readOutbound()) != null; ) {
      to.writeInbound(o);
    }
    to.runPendingTasks();
  }

  /** How the input is cut into reads. */
  enum Split {
    ONE,
    RANDOM,
    BYTES
  }

  /**
   * What a decoder did with the input: the messages it passed on, what it wrote, the error it
   * raised, and whether the channel stayed open.
   */
  record Outcome(List<String> inbound, List<String> outbound, String error, boolean open) {}

  private static Outcome run(ChannelHandler decoder, List<ByteBuf> reads) {
    return run(new EmbeddedChannel(decoder), reads);
  }

  private static Outcome run(EmbeddedChannel ch, List<ByteBuf> reads) {
    List<String> inbound = new ArrayList<>();
    List<String> outbound = new ArrayList<>();
    String error = null;
    try {
      for (ByteBuf read : reads) {
        if (error != null || !ch.isOpen()) {
          read.release();
          continue;
        }
        try {
          ch.writeInbound(read);
        } catch (Exception e) {
          error =
              e.getClass().getSimpleName()
                  + ": "
                  + e.getMessage()
                  + (e instanceof CorruptedWebSocketFrameException c
                      ? " status=" + c.closeStatus().code()
                      : "");
        }
        for (Object o; (o = ch.readInbound()) != null; ) {
          inbound.add(describe(o));
        }
      }
      for (Object o; (o = ch.readOutbound()) != null; ) {
        outbound.add(describe(o));
      }
      return new Outcome(inbound, outbound, error, ch.isOpen());
    } finally {
      ch.finishAndReleaseAll();
    }
  }

  /** Describes and releases a message. */
  private static String describe(Object msg) {
    try {
      if (msg instanceof CloseWebSocketFrame close && close.content().readableBytes() >= 2) {
        return "close " + close.statusCode() + " " + close.reasonText();
      }
      if (msg instanceof WebSocketFrame f) {
        return f.getClass().getSimpleName()
            + " fin="
            + f.isFinalFragment()
            + " rsv="
            + f.rsv()
            + " "
            + digest(f.content());
      }
      if (msg instanceof ByteBuf b) {
        return "bytes " + digest(b);
      }
      return String.valueOf(msg);
    } finally {
      io.netty.util.ReferenceCountUtil.release(msg);
    }
  }

  private static String digest(ByteBuf b) {
    CRC32 crc = new CRC32();
    crc.update(ByteBufUtil.getBytes(b));
    return b.readableBytes() + "B crc=" + Long.toHexString(crc.getValue());
  }

  /** Fresh reads of {@code wire} for one decoder, of assorted kinds of buffer. */
  private static List<ByteBuf> chunks(byte[] wire, Split split, long seed) {
    Random r = new Random(seed * 0x9E3779B97F4A7C15L);
    List<ByteBuf> reads = new ArrayList<>();
    int at = 0;
    while (at < wire.length) {
      int n =
          switch (split) {
            case ONE -> wire.length;
            case BYTES -> 1;
            case RANDOM ->
                switch (r.nextInt(3)) {
                  case 0 -> 1 + r.nextInt(16);
                  case 1 -> 1 + r.nextInt(4096);
                  default -> 1 + r.nextInt(300 * 1024);
                };
          };
      n = Math.min(n, wire.length - at);
      // One-byte reads as unpooled buffers without spare room: cheap to track, and they make the
      // decoder merge its queue.
      reads.add(
          read(wire, at, n, split == Split.RANDOM ? r.nextInt(5) : split == Split.BYTES ? 2 : 0));
      at += n;
    }
    return reads;
  }

  private static ByteBuf read(byte[] wire, int at, int n, int kind) {
    return switch (kind) {
      case 1 -> ALLOC.heapBuffer(n).writeBytes(wire, at, n);
      case 2 -> Unpooled.wrappedBuffer(Arrays.copyOfRange(wire, at, at + n)); // no spare room
      case 3 -> ALLOC.directBuffer(n).writeBytes(wire, at, n).asReadOnly();
      default -> ALLOC.directBuffer(n).writeBytes(wire, at, n);
    };
  }

  private static byte[] encode(boolean mask, List<WebSocketFrame> frames) {
    EmbeddedChannel enc = new EmbeddedChannel(new WebSocket08FrameEncoder(mask));
    ByteBuf all = Unpooled.buffer();
    for (WebSocketFrame f : frames) {
      enc.writeOutbound(f);
      for (ByteBuf b; (b = enc.readOutbound()) != null; ) {
        all.writeBytes(b);
        b.release();
      }
    }
    enc.finishAndReleaseAll();
    return ByteBufUtil.getBytes(all);
  }

  /** A few messages: data (some fragmented, with pings between fragments), control, a close. */
  private static List<WebSocketFrame> randomMessages(Random r, boolean rsv) {
    List<WebSocketFrame> frames = new ArrayList<>();
    int large = 0;
    for (int m = 1 + r.nextInt(6); m > 0; m--) {
      int kind = r.nextInt(10);
      if (kind < 2) {
        frames.add(control(r, kind == 0));
      } else if (kind < 7) {
        int size = dataSize(r, large++ < 2);
        frames.add(data(r, kind == 2 ? 1 : 2, true, rsv, size));
      } else {
        frames.add(data(r, r.nextBoolean() ? 1 : 2, false, rsv, dataSize(r, false)));
        for (int c = r.nextInt(3); c > 0; c--) {
          if (r.nextInt(3) == 0) {
            frames.add(control(r, true));
          }
          frames.add(data(r, 0, false, rsv, dataSize(r, false)));
        }
        frames.add(data(r, 0, true, rsv, dataSize(r, large++ < 2)));
      }
    }
    if (r.nextInt(4) == 0) {
      int[] codes = {1000, 1001, 1003, 1011, 3000, 4999};
      frames.add(new CloseWebSocketFrame(codes[r.nextInt(codes.length)], "bye é"));
    }
    return frames;
  }

  private static int dataSize(Random r, boolean mayBeLarge) {
    int[] edges = {0, 1, 7, 8, 125, 126, 127, 65535, 65536, 65537};
    return switch (r.nextInt(mayBeLarge ? 12 : 10)) {
      case 0, 1 -> edges[r.nextInt(edges.length)];
      case 10, 11 -> 65536 + r.nextInt(MAX_PAYLOAD - 65536);
      default -> r.nextInt(3000);
    };
  }

  private static WebSocketFrame data(Random r, int opcode, boolean fin, boolean rsv, int size) {
    ByteBuf content = Unpooled.wrappedBuffer(bytes(r.nextInt(), size));
    int bits = rsv ? r.nextInt(8) : 0;
    return switch (opcode) {
      case 0 -> new ContinuationWebSocketFrame(fin, bits, content);
      case 1 -> new TextWebSocketFrame(fin, bits, content);
      default -> new BinaryWebSocketFrame(fin, bits, content);
    };
  }

  private static WebSocketFrame control(Random r, boolean ping) {
    ByteBuf content = Unpooled.wrappedBuffer(bytes(r.nextInt(), r.nextInt(126)));
    return ping ? new PingWebSocketFrame(content) : new PongWebSocketFrame(content);
  }

  private static byte[] bytes(int seed, int n) {
    byte[] b = new byte[n];
    new Random(seed).nextBytes(b);
    return b;
  }

  private static byte[] concat(byte[] a, byte[] b) {
    byte[] out = Arrays.copyOf(a, a.length + b.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }

  private static byte[] hex(String s) {
    return ByteBufUtil.decodeHexDump(s.replace(" ", ""));
  }

  private static boolean utf8(String hex) {
    ByteBuf b = Unpooled.wrappedBuffer(hex(hex));
    return SlicingWebSocketFrameDecoder.isUtf8Prefix(b, 0, b.writerIndex());
  }

  private static WebSocketDecoderConfig config(boolean expectMasked, int max) {
    return WebSocketDecoderConfig.newBuilder()
        .expectMaskedFrames(expectMasked)
        .maxFramePayloadLength(max)
        .build();
  }

  private static WebSocketDecoderConfig server() {
    return WebSocketDecoderConfig.newBuilder()
        .maxFramePayloadLength(MAX_PAYLOAD)
        .allowMaskMismatch(true)
        .build();
  }

  private static WebSocketDecoderConfig client() {
    return WebSocketDecoderConfig.newBuilder()
        .expectMaskedFrames(false)
        .maxFramePayloadLength(MAX_PAYLOAD)
        .allowMaskMismatch(true)
        .build();
  }

  private static WebSocketDecoderConfig strictServer() {
    return WebSocketDecoderConfig.newBuilder().expectMaskedFrames(true).build();
  }

  private static WebSocketDecoderConfig strictClient() {
    return WebSocketDecoderConfig.newBuilder().expectMaskedFrames(false).build();
  }

  private static WebSocketDecoderConfig limited(int max) {
    return WebSocketDecoderConfig.newBuilder()
        .maxFramePayloadLength(max)
        .allowMaskMismatch(true)
        .build();
  }
}
