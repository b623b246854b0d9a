package io.egresstunnel.proto.metrics;

import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.FrameType;
import io.egresstunnel.proto.session.SessionMetrics;
import io.egresstunnel.proto.session.TunnelSession;
import io.prometheus.metrics.core.datapoints.CounterDataPoint;
import io.prometheus.metrics.core.datapoints.DistributionDataPoint;
import io.prometheus.metrics.core.datapoints.GaugeDataPoint;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.Gauge;
import io.prometheus.metrics.core.metrics.Histogram;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import io.prometheus.metrics.model.snapshots.Unit;
import java.util.Locale;

/**
 * The tunnel's metrics as Prometheus sees them, shared by server and agent: frames by type, DATA
 * bytes each way, streams open and ended by outcome, pending dials, and time without credit; on the
 * agent also its dials by outcome and their latency. docs/metrics.md lists them.
 *
 * <p>Every labelled child is resolved once, here, so that the hot path is one {@code LongAdder}
 * add: labels come from small fixed sets (frame type, direction, outcome, route), never from a
 * stream or a target.
 */
public final class TunnelMetrics implements SessionMetrics {
  /** Upper bounds of the dial latency histograms, in seconds: 0.5 ms to the 10 s dial timeout. */
  public static final double[] DIAL_SECONDS_BUCKETS = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
  };

  /** Label value of the server's streams carried by agents. */
  public static final String ROUTE_AGENT = "agent";

  /** Label value of the server's direct connections. */
  public static final String ROUTE_DIRECT = "direct";

  private final CounterDataPoint[] framesSent = new CounterDataPoint[FrameType.values().length];
  private final CounterDataPoint[] framesReceived = new CounterDataPoint[FrameType.values().length];
  private final CounterDataPoint bytesSent;
  private final CounterDataPoint bytesReceived;
  private final CounterDataPoint splicedIn;
  private final CounterDataPoint splicedOut;
  private final CounterDataPoint directToTarget;
  private final CounterDataPoint directToClient;
  private final GaugeDataPoint streamsOpen;
  private final CounterDataPoint[] streamsEnded =
      new CounterDataPoint[StreamOutcome.values().length];
  private final GaugeDataPoint pendingDials;
  private final CounterDataPoint creditStalls;
  private final CounterDataPoint creditStallSeconds;
  private final GaugeDataPoint streamsStalled;
  private final CounterDataPoint[] dials;
  private final DistributionDataPoint[] dialSeconds;

  /**
   * Registers the metrics of one side in {@code registry}.
   *
   * @param prefix every name's prefix, e.g. {@code egress_tunnel_server_}
   * @param role the side: the server's byte counts have a {@code route} label (its direct
   *     connections are counted too, see {@link #directBytesToTarget()}), and only the agent
   *     answers dials
   */
  public TunnelMetrics(PrometheusRegistry registry, String prefix, TunnelSession.Role role) {
    boolean server = role == TunnelSession.Role.SERVER;
    io.prometheus.metrics.core.metrics.GaugeWithCallback.builder()
        .name(prefix + "netty_memory_bytes")
        .help(
            "Memory Netty's buffer allocator holds (direct and heap), in use or cached in its"
                + " pools: the datapath's buffers. It stays flat under steady load.")
        .labelNames("type")
        .unit(io.prometheus.metrics.model.snapshots.Unit.BYTES)
        .callback(
            cb -> {
              if (io.netty.buffer.ByteBufAllocator.DEFAULT
                  instanceof io.netty.buffer.ByteBufAllocatorMetricProvider p) {
                cb.call(p.metric().usedDirectMemory(), "direct");
                cb.call(p.metric().usedHeapMemory(), "heap");
              }
            })
        .register(registry);
    Counter frames =
        Counter.builder()
            .name(prefix + "frames_total")
            .help("Tunnel protocol frames by direction (sent, received) and type.")
            .labelNames("direction", "type")
            .withoutExemplars()
            .register(registry);
    for (FrameType t : FrameType.values()) {
      framesSent[t.ordinal()] = frames.labelValues("sent", label(t));
      framesReceived[t.ordinal()] = frames.labelValues("received", label(t));
    }

    Counter bytes =
        Counter.builder()
            .name(prefix + "bytes_total")
            .help(
                "Payload bytes relayed, by direction: to_target (from the CONNECT client towards"
                    + " the target) or to_client"
                    + (server ? "; route is agent (through a tunnel) or direct." : "."))
            .unit(Unit.BYTES)
            .labelNames(server ? new String[] {"route", "direction"} : new String[] {"direction"})
            .withoutExemplars()
            .register(registry);
    CounterDataPoint toTarget =
        server ? bytes.labelValues(ROUTE_AGENT, "to_target") : bytes.labelValues("to_target");
    CounterDataPoint toClient =
        server ? bytes.labelValues(ROUTE_AGENT, "to_client") : bytes.labelValues("to_client");
    // The server sends what its client wrote; the agent sends what its target wrote.
    bytesSent = server ? toTarget : toClient;
    bytesReceived = server ? toClient : toTarget;
    Counter spliced =
        Counter.builder()
            .name(prefix + "spliced_bytes_total")
            .help(
                "Of the payload bytes relayed through the tunnel, those that went between the"
                    + " websocket and the stream's socket by splice(2), without a copy into the"
                    + " process; by direction, as bytes_total.")
            .unit(Unit.BYTES)
            .labelNames("direction")
            .withoutExemplars()
            .register(registry);
    splicedOut = spliced.labelValues(server ? "to_target" : "to_client");
    splicedIn = spliced.labelValues(server ? "to_client" : "to_target");
    directToTarget = server ? bytes.labelValues(ROUTE_DIRECT, "to_target") : null;
    directToClient = server ? bytes.labelValues(ROUTE_DIRECT, "to_client") : null;

    streamsOpen =
        Gauge.builder()
            .name(prefix + "streams_open")
            .help("Tunnel streams open now (dialled successfully and not ended yet).")
            .withoutExemplars()
            .register(registry);
    Counter ended =
        Counter.builder()
            .name(prefix + "streams_total")
            .help(
                "Tunnel streams ended, by outcome: ok (FIN both ways), reset, dial_failed (never"
                    + " opened), session_lost.")
            .labelNames("outcome")
            .withoutExemplars()
            .register(registry);
    for (StreamOutcome o : StreamOutcome.values()) {
      streamsEnded[o.ordinal()] = ended.labelValues(o.name().toLowerCase(Locale.ROOT));
    }
    pendingDials =
        Gauge.builder()
            .name(prefix + "pending_dials")
            .help("Tunnel streams dialling now: DIAL sent (server) or accepted (agent), no result.")
            .withoutExemplars()
            .register(registry);

    creditStalls =
        Counter.builder()
            .name(prefix + "stream_credit_stalls_total")
            .help("Times a stream's send window fell to zero, so that it stopped reading.")
            .withoutExemplars()
            .register(registry);
    creditStallSeconds =
        Counter.builder()
            .name(prefix + "stream_credit_stall_seconds_total")
            .help("Time streams spent with no send credit, counted when a stall ends.")
            .unit(Unit.SECONDS)
            .withoutExemplars()
            .register(registry);
    streamsStalled =
        Gauge.builder()
            .name(prefix + "streams_credit_stalled")
            .help("Streams with no send credit now, waiting for the peer to drain.")
            .withoutExemplars()
            .register(registry);

    if (server) {
      dials = null;
      dialSeconds = null;
    } else {
      dials = new CounterDataPoint[DialStatus.values().length];
      dialSeconds = new DistributionDataPoint[DialStatus.values().length];
      Counter dialCounter =
          Counter.builder()
              .name(prefix + "dials_total")
              .help("Dials the servers asked for, by outcome (ok or the failed dial status).")
              .labelNames("outcome")
              .withoutExemplars()
              .register(registry);
      Histogram dialHistogram =
          Histogram.builder()
              .name(prefix + "dial_duration_seconds")
              .help("Time from a DIAL's arrival to its DIAL_RESULT, by outcome.")
              .unit(Unit.SECONDS)
              .labelNames("outcome")
              .classicOnly()
              .classicUpperBounds(DIAL_SECONDS_BUCKETS)
              .withoutExemplars()
              .register(registry);
      for (DialStatus s : DialStatus.values()) {
        dials[s.ordinal()] = dialCounter.labelValues(label(s));
        dialSeconds[s.ordinal()] = dialHistogram.labelValues(label(s));
      }
    }
  }

  /** The label value of a frame type: {@code data}, {@code window_update}, ... */
  public static String label(FrameType type) {
    return type.name().toLowerCase(Locale.ROOT);
  }

  /** The label value of a dial status: {@code ok}, {@code refused}, {@code too_many_streams}... */
  public static String label(DialStatus status) {
    return status.name().toLowerCase(Locale.ROOT);
  }

  /** Server: bytes of direct connections from the client to the target. */
  public CounterDataPoint directBytesToTarget() {
    return directToTarget;
  }

  /** Server: bytes of direct connections from the target to the client. */
  public CounterDataPoint directBytesToClient() {
    return directToClient;
  }

  // ---- SessionMetrics --------------------------------------------------------------------------

  @Override
  public void frameReceived(FrameType type) {
    framesReceived[type.ordinal()].inc();
  }

  @Override
  public void frameSent(FrameType type) {
    framesSent[type.ordinal()].inc();
  }

  @Override
  public void dataReceived(int bytes) {
    bytesReceived.inc(bytes);
  }

  @Override
  public void dataSplicedIn(int bytes) {
    splicedIn.inc(bytes);
  }

  @Override
  public void dataSplicedOut(int bytes) {
    splicedOut.inc(bytes);
  }

  @Override
  public void dataSent(int bytes) {
    bytesSent.inc(bytes);
  }

  @Override
  public void dialStarted() {
    pendingDials.inc();
  }

  @Override
  public void dialSettled() {
    pendingDials.dec();
  }

  @Override
  public void dialAnswered(DialStatus status, long nanos) {
    if (dials != null) {
      dials[status.ordinal()].inc();
      dialSeconds[status.ordinal()].observe(Unit.nanosToSeconds(nanos));
    }
  }

  @Override
  public void streamOpened() {
    streamsOpen.inc();
  }

  @Override
  public void streamClosed(StreamOutcome outcome, boolean wasOpen) {
    streamsEnded[outcome.ordinal()].inc();
    if (wasOpen) {
      streamsOpen.dec();
    }
  }

  @Override
  public void creditStalled() {
    creditStalls.inc();
    streamsStalled.inc();
  }

  @Override
  public void creditResumed(long nanos) {
    streamsStalled.dec();
    creditStallSeconds.inc(Unit.nanosToSeconds(nanos));
  }
}
