package io.egresstunnel.bench.tunnel;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import io.egresstunnel.server.frontend.grpc.Packet;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.PooledByteBufAllocator;
import io.netty.util.ReferenceCountUtil;
import java.io.IOException;
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
 * Taking a Konnectivity {@code DATA} packet out of a received buffer: the GRPC frontend's {@code
 * Packet.decode}, which slices the payload, beside what grpc-java's default protobuf marshaller and
 * generated code do with the same bytes (the baseline, in the same run): copy the message into a
 * {@code byte[]} and parse it with a {@code CodedInputStream}, whose {@code readBytes} copies the
 * payload again into a {@code ByteString}. The ratio is what writing the frontend on codec-http2
 * saves per packet (docs/architecture.md, "A GRPC dial").
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar GrpcPacketDecode -prof gc}
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(
    value = 1,
    jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled", "-Xms1g", "-Xmx1g"})
public class GrpcPacketDecodeBenchmark {
  /** konnectivity-client's writes: up to 32 KiB from an io.Copy, and large ones from bulk reads. */
  @Param({"16384", "262144"})
  public int payloadSize;

  private ByteBuf message;
  private byte[] marshallerBuffer;

  @Setup(Level.Trial)
  public void setUp() {
    byte[] bytes = new byte[payloadSize];
    ThreadLocalRandom.current().nextBytes(bytes);
    ByteBuf payload = PooledByteBufAllocator.DEFAULT.directBuffer(payloadSize).writeBytes(bytes);
    ByteBuf framed =
        Packet.encodeGrpcMessage(new Packet.Data(7, "", payload), PooledByteBufAllocator.DEFAULT);
    framed.skipBytes(5); // the gRPC message prefix: what is left is the protobuf message
    message = PooledByteBufAllocator.DEFAULT.directBuffer().writeBytes(framed);
    framed.release();
    marshallerBuffer = new byte[message.readableBytes()]; // grpc-java keeps one per thread
  }

  @TearDown(Level.Trial)
  public void tearDown() {
    message.release();
  }

  @Benchmark
  public long slicing() {
    Packet p = Packet.decode(message.retainedDuplicate());
    long n = ((Packet.Data) p).data().readableBytes();
    ReferenceCountUtil.release(p);
    return n;
  }

  @Benchmark
  public long protobufJava() throws IOException {
    int size = message.readableBytes();
    message.getBytes(message.readerIndex(), marshallerBuffer, 0, size);
    CodedInputStream packet = CodedInputStream.newInstance(marshallerBuffer, 0, size);
    long n = 0;
    for (int tag; (tag = packet.readTag()) != 0; ) {
      if (tag == (4 << 3 | 2)) { // Packet.data, a Data message
        int limit = packet.pushLimit(packet.readRawVarint32());
        for (int t; (t = packet.readTag()) != 0; ) {
          if (t == (3 << 3 | 2)) {
            ByteString data = packet.readBytes(); // generated code's copy
            n += data.size();
          } else {
            packet.skipField(t);
          }
        }
        packet.popLimit(limit);
      } else {
        packet.skipField(tag);
      }
    }
    return n;
  }
}
