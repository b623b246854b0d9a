package io.egresstunnel.bench.proto;

import io.egresstunnel.proto.net.SlicingWebSocketFrameDecoder;
import io.egresstunnel.proto.net.Transport;
import io.netty.buffer.AbstractByteBufAllocator;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelHandler;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.handler.codec.http.websocketx.BinaryWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocket08FrameDecoder;
import io.netty.handler.codec.http.websocketx.WebSocket08FrameEncoder;
import io.netty.handler.codec.http.websocketx.WebSocketDecoderConfig;
import io.netty.handler.codec.http.websocketx.WebSocketFrame;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OperationsPerInvocation;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Receiving a stream of binary websocket frames: Netty's {@link WebSocket08FrameDecoder} (copies
 * each payload) against {@link SlicingWebSocketFrameDecoder} (slices it), in the same run. One
 * operation is one frame. Each invocation fills {@value #FRAMES} frames' worth of fresh pooled
 * direct buffers of up to {@link Transport#MAX_READ} bytes, as socket reads do, and fires them
 * through the decoder; the frames are released as they come out.
 *
 * <ul>
 *   <li>{@code reads}: filling and releasing the reads alone, the floor under every decoder.
 *   <li>{@code netty}: the stock decoder.
 *   <li>{@code slicing}: ours with its default pin factor, which copies payloads that would pin a
 *       read more than 8 times their size (16 KiB frames in 256 KiB reads, 64 B frames).
 *   <li>{@code slicingUnbounded}: ours slicing whatever it can.
 * </ul>
 *
 * <p>Payload copies go to pooled direct memory, which {@code -prof gc} does not see; the trial's
 * tear-down prints the bytes the decoder asked its allocator for, per frame.
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar WebSocketDecode -prof gc}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
    value = 1,
    jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled", "-Xms1g", "-Xmx1g"})
public class WebSocketDecodeBenchmark {
  static final int FRAMES = 32;

  @Param({"64", "16384", "262144"})
  public int payloadSize;

  @Param({"false", "true"})
  public boolean masked;

  @Param({"reads", "netty", "slicing", "slicingUnbounded"})
  public String decoder;

  private final CountingAllocator alloc = new CountingAllocator();
  private ByteBuf stream;
  private EmbeddedChannel channel;
  private Sink sink;
  private long invocations;

  @Setup(Level.Trial)
  public void setUp() {
    EmbeddedChannel encoder = new EmbeddedChannel(new WebSocket08FrameEncoder(masked));
    stream = PooledByteBufAllocator.DEFAULT.directBuffer();
    for (int i = 0; i < FRAMES; i++) {
      byte[] payload = new byte[payloadSize];
      ThreadLocalRandom.current().nextBytes(payload);
      encoder.writeOutbound(new BinaryWebSocketFrame(Unpooled.wrappedBuffer(payload)));
      for (ByteBuf b; (b = encoder.readOutbound()) != null; ) {
        stream.writeBytes(b);
        b.release();
      }
    }
    encoder.finishAndReleaseAll();

    WebSocketDecoderConfig config =
        WebSocketDecoderConfig.newBuilder()
            .expectMaskedFrames(masked)
            .maxFramePayloadLength(payloadSize + 1024)
            .build();
    sink = new Sink();
    ChannelHandler handler =
        switch (decoder) {
          case "netty" -> new WebSocket08FrameDecoder(config);
          case "slicing" -> new SlicingWebSocketFrameDecoder(config);
          case "slicingUnbounded" -> new SlicingWebSocketFrameDecoder(config, Integer.MAX_VALUE);
          default -> new ChannelInboundHandlerAdapter(); // reads: released by the sink
        };
    channel = new EmbeddedChannel(handler, sink);
    channel.config().setAllocator(alloc);
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    System.out.printf(
        "%n%s, %d B, masked=%s: decoder allocated %.1f B per frame (%d frames seen)%n",
        decoder, payloadSize, masked, (double) alloc.bytes / (invocations * FRAMES), sink.frames);
    channel.finishAndReleaseAll();
    stream.release();
  }

  @Benchmark
  @OperationsPerInvocation(FRAMES)
  public long decode() {
    invocations++;
    long before = sink.bytes;
    int length = stream.readableBytes();
    for (int at = 0; at < length; at += Transport.MAX_READ) {
      int n = Math.min(Transport.MAX_READ, length - at);
      ByteBuf read = PooledByteBufAllocator.DEFAULT.directBuffer(n);
      read.writeBytes(stream, at, n);
      channel.pipeline().fireChannelRead(read);
    }
    channel.pipeline().fireChannelReadComplete();
    return sink.bytes - before;
  }

  /** The end of the pipeline: counts and releases what arrives. */
  static final class Sink extends ChannelInboundHandlerAdapter {
    long bytes;
    long frames;

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      if (msg instanceof WebSocketFrame frame) {
        bytes += frame.content().readableBytes();
        frames++;
        frame.release();
      } else if (msg instanceof ByteBuf buf) {
        bytes += buf.readableBytes();
        buf.release();
      }
    }
  }

  /** Pooled buffers, counting the bytes asked for (the decoders' copies and composites). */
  static final class CountingAllocator extends AbstractByteBufAllocator {
    long bytes;

    CountingAllocator() {
      super(true);
    }

    @Override
    protected ByteBuf newHeapBuffer(int initialCapacity, int maxCapacity) {
      bytes += initialCapacity;
      return PooledByteBufAllocator.DEFAULT.heapBuffer(initialCapacity, maxCapacity);
    }

    @Override
    protected ByteBuf newDirectBuffer(int initialCapacity, int maxCapacity) {
      bytes += initialCapacity;
      return PooledByteBufAllocator.DEFAULT.directBuffer(initialCapacity, maxCapacity);
    }

    @Override
    public boolean isDirectBufferPooled() {
      return true;
    }
  }
}
