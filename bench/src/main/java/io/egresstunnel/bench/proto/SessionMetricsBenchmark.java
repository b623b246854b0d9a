package io.egresstunnel.bench.proto;

import io.egresstunnel.proto.FrameType;
import io.egresstunnel.proto.metrics.TunnelMetrics;
import io.egresstunnel.proto.session.SessionMetrics;
import io.egresstunnel.proto.session.TunnelSession;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Threads;
import org.openjdk.jmh.annotations.Warmup;

/**
 * What the metrics add to each DATA frame: the calls a sent and a received DATA frame make ({@code
 * frameSent} + {@code dataSent}, {@code frameReceived} + {@code dataReceived}), with {@link
 * TunnelMetrics} against {@link SessionMetrics#NONE} as the baseline in the same run. Two threads
 * share the counters, as two event loops do.
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar SessionMetrics -prof gc}
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.NANOSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Threads(2)
@Fork(
    value = 1,
    jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled", "-Xms1g", "-Xmx1g"})
public class SessionMetricsBenchmark {
  @Param({"prometheus", "none"})
  public String metrics;

  private SessionMetrics m;

  @Setup
  public void setUp() {
    m =
        "none".equals(metrics)
            ? SessionMetrics.NONE
            : new TunnelMetrics(
                new PrometheusRegistry(), "egress_tunnel_bench_", TunnelSession.Role.SERVER);
  }

  /** One DATA frame each way, as a relaying stream reports them. */
  @Benchmark
  public void dataFrameEachWay() {
    m.frameSent(FrameType.DATA);
    m.dataSent(16_384);
    m.frameReceived(FrameType.DATA);
    m.dataReceived(16_384);
  }
}
