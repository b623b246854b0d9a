package io.egresstunnel.bench.proto;

import io.egresstunnel.proto.DataFrame;
import io.egresstunnel.proto.FrameCodec;
import io.egresstunnel.proto.FrameType;
import io.egresstunnel.proto.Limits;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufAllocator;
import io.netty.buffer.PooledByteBufAllocator;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Encode and decode of DATA frames with pooled direct buffers, as the datapath does them. {@code
 * copyingRoundTrip} is the baseline in the same run: the same framing done by copying the payload
 * (as Netty's stock websocket decoder does), so the ratio shows what zero-copy buys.
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar DataFrameCodec -prof gc}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
    value = 1,
    jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled", "-Xms1g", "-Xmx1g"})
public class DataFrameCodecBenchmark {
  private static final ByteBufAllocator ALLOC = PooledByteBufAllocator.DEFAULT;

  @Param({"64", "16384", "65536"})
  public int payloadSize;

  private ByteBuf payload;
  private ByteBuf received;

  @Setup(Level.Trial)
  public void setUp() {
    byte[] bytes = new byte[payloadSize];
    ThreadLocalRandom.current().nextBytes(bytes);
    payload = ALLOC.directBuffer(payloadSize).writeBytes(bytes);
    // A received message is one contiguous buffer: header then payload.
    ByteBuf encoded = FrameCodec.encode(ALLOC, new DataFrame(1, payload.retainedDuplicate()));
    received = ALLOC.directBuffer(encoded.readableBytes()).writeBytes(encoded);
    encoded.release();
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    payload.release();
    received.release();
  }

  /** Header buffer plus the payload itself, in a composite. */
  @Benchmark
  public int encode() {
    DataFrame frame = new DataFrame(1, payload.retainedDuplicate());
    ByteBuf out = FrameCodec.encode(ALLOC, frame);
    int n = out.readableBytes();
    out.release();
    frame.release();
    return n;
  }

  /** Parse the header and hand out a retained slice of the received message. */
  @Benchmark
  public int decode() {
    DataFrame frame =
        (DataFrame) FrameCodec.decode(received.duplicate(), Limits.MAX_FRAME_PAYLOAD_CEILING);
    int n = frame.content().readableBytes();
    frame.release();
    return n;
  }

  /** Encode, then decode what a peer would receive. */
  @Benchmark
  public int roundTrip() {
    return encode() + decode();
  }

  /** Baseline: the same framing with the payload copied on each side, as a copying codec does. */
  @Benchmark
  public int copyingRoundTrip() {
    ByteBuf out = ALLOC.directBuffer(Limits.HEADER_SIZE + payloadSize);
    FrameCodec.writeHeader(out, FrameType.DATA, 1, payloadSize);
    out.writeBytes(payload, payload.readerIndex(), payloadSize);
    ByteBuf in = ALLOC.directBuffer(payloadSize);
    in.writeBytes(out, Limits.HEADER_SIZE, payloadSize);
    int n = out.readableBytes() + in.readableBytes();
    out.release();
    in.release();
    return n;
  }
}
