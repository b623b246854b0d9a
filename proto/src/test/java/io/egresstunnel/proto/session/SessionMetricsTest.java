package io.egresstunnel.proto.session;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.DataFrame;
import io.egresstunnel.proto.Dial;
import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.Fin;
import io.egresstunnel.proto.FrameType;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.ServerHello;
import io.egresstunnel.proto.WindowUpdate;
import io.egresstunnel.proto.session.SessionMetrics.StreamOutcome;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.embedded.EmbeddedChannel;
import io.netty.channel.socket.ChannelInputShutdownEvent;
import io.netty.util.ReferenceCountUtil;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The agent end of a session on an {@link EmbeddedChannel}, driven frame by frame: what it reports
 * to its {@link SessionMetrics}, in particular the credit-stall accounting.
 */
class SessionMetricsTest {
  private static final int PEER_WINDOW = 1000;

  private final Recorder metrics = new Recorder();
  private final List<TunnelStream> dialled = new ArrayList<>();
  private final List<EmbeddedChannel> targets = new ArrayList<>();
  private EmbeddedChannel ws;
  private EmbeddedChannel target;

  @BeforeEach
  void establish() {
    TunnelSession.Config config =
        new TunnelSession.Config(
            Limits.DEFAULT_INITIAL_WINDOW, Limits.MIN_FRAME_PAYLOAD_FLOOR, 10, 10, 10_000);
    AgentHello hello =
        new AgentHello(
            1,
            1,
            0,
            config.initialWindow(),
            config.maxFramePayload(),
            10250,
            "node-a",
            List.of(),
            List.of());
    TunnelSession session =
        TunnelSession.agent(
                config,
                hello,
                new TunnelSession.Listener() {
                  @Override
                  public void onDial(TunnelStream stream, Dial dial) {
                    dialled.add(stream);
                  }
                })
            .withMetrics(metrics);
    ws = new EmbeddedChannel(session);
    ws.writeInbound(
        new ServerHello(1, 0, PEER_WINDOW, Limits.MIN_FRAME_PAYLOAD_FLOOR, 10, 1, "server-1"));
  }

  @AfterEach
  void release() {
    ws.finishAndReleaseAll();
    targets.forEach(EmbeddedChannel::finishAndReleaseAll);
  }

  @Test
  void aStreamThatRunsOutOfCreditStallsUntilTheWindowUpdate() {
    TunnelStream stream = openStream(1);
    assertThat(metrics.pendingDials).isZero();
    assertThat(metrics.open).isEqualTo(1);
    assertThat(metrics.dialsAnswered).containsEntry(DialStatus.OK, 1);

    target.writeInbound(bytes(PEER_WINDOW + 500)); // more than the peer's window
    assertThat(metrics.dataSent).isEqualTo(PEER_WINDOW);
    assertThat(metrics.stalls).isEqualTo(1);
    assertThat(metrics.stalledNow).isEqualTo(1);
    assertThat(stream.isCreditStalled()).isTrue();

    ws.writeInbound(new WindowUpdate(1, PEER_WINDOW)); // the held 500 bytes go out
    assertThat(metrics.dataSent).isEqualTo(PEER_WINDOW + 500);
    assertThat(metrics.stalledNow).isZero();
    assertThat(metrics.resumes).isEqualTo(1);
    assertThat(metrics.stalledNanos).isNotNegative();
    assertThat(stream.isCreditStalled()).isFalse();

    ws.writeInbound(new WindowUpdate(1, 1)); // credit while not stalled: no stall ends
    assertThat(metrics.resumes).isEqualTo(1);
    assertThat(metrics.stalls).isEqualTo(1);
  }

  @Test
  void aStreamThatEndsWhileStalledCountsItsStall() {
    openStream(1);
    target.writeInbound(bytes(PEER_WINDOW));
    assertThat(metrics.stalledNow).isEqualTo(1);

    target.close();
    assertThat(metrics.stalledNow).isZero();
    assertThat(metrics.resumes).isEqualTo(1);
    assertThat(metrics.ended).containsEntry(StreamOutcome.RESET, 1);
    assertThat(metrics.open).isZero();
  }

  @Test
  void framesBytesAndAGracefulEnd() {
    openStream(1);
    ws.writeInbound(new DataFrame(1, bytes(300)));
    assertThat(metrics.dataReceived).isEqualTo(300);
    releaseAll(target.outboundMessages());
    target.writeInbound(bytes(200));
    ws.writeInbound(new Fin(1));
    target.pipeline().fireUserEventTriggered(ChannelInputShutdownEvent.INSTANCE);

    assertThat(metrics.ended).containsEntry(StreamOutcome.OK, 1);
    assertThat(metrics.open).isZero();
    assertThat(metrics.received)
        .containsEntry(FrameType.SERVER_HELLO, 1)
        .containsEntry(FrameType.DIAL, 1)
        .containsEntry(FrameType.DATA, 1)
        .containsEntry(FrameType.FIN, 1);
    assertThat(metrics.sent)
        .containsEntry(FrameType.AGENT_HELLO, 1)
        .containsEntry(FrameType.DIAL_RESULT, 1)
        .containsEntry(FrameType.DATA, 1)
        .containsEntry(FrameType.FIN, 1);
    assertThat(metrics.dataSent).isEqualTo(200);
  }

  @Test
  void failedDialsAndALostSession() {
    ws.writeInbound(new Dial(1, 1000, "127.0.0.1", 80));
    assertThat(metrics.pendingDials).isEqualTo(1);
    dialled.get(0).dialFailed(DialStatus.REFUSED, "connection refused");
    assertThat(metrics.pendingDials).isZero();
    assertThat(metrics.dialsAnswered).containsEntry(DialStatus.REFUSED, 1);
    assertThat(metrics.ended).containsEntry(StreamOutcome.DIAL_FAILED, 1);
    assertThat(metrics.open).isZero();

    openStream(2);
    ws.writeInbound(new Dial(3, 1000, "127.0.0.1", 80)); // still dialling when the session ends
    assertThat(metrics.pendingDials).isEqualTo(1);
    ws.close();
    assertThat(metrics.ended).containsEntry(StreamOutcome.SESSION_LOST, 2);
    assertThat(metrics.pendingDials).isZero();
    assertThat(metrics.open).isZero();
  }

  private TunnelStream openStream(int id) {
    ws.writeInbound(new Dial(id, 1000, "127.0.0.1", 80));
    TunnelStream stream = dialled.get(dialled.size() - 1);
    target = new EmbeddedChannel();
    targets.add(target);
    stream.dialSucceeded(target);
    releaseAll(ws.outboundMessages());
    return stream;
  }

  private static ByteBuf bytes(int n) {
    return Unpooled.wrappedBuffer(new byte[n]);
  }

  private static void releaseAll(java.util.Queue<Object> queue) {
    for (Object o; (o = queue.poll()) != null; ) {
      ReferenceCountUtil.release(o);
    }
  }

  /** Counts every call, on the one thread an embedded channel runs on. */
  private static final class Recorder implements SessionMetrics {
    final Map<FrameType, Integer> sent = new EnumMap<>(FrameType.class);
    final Map<FrameType, Integer> received = new EnumMap<>(FrameType.class);
    final Map<DialStatus, Integer> dialsAnswered = new EnumMap<>(DialStatus.class);
    final Map<StreamOutcome, Integer> ended = new EnumMap<>(StreamOutcome.class);
    long dataSent;
    long dataReceived;
    int pendingDials;
    int open;
    int stalls;
    int stalledNow;
    int resumes;
    long stalledNanos;

    @Override
    public void frameReceived(FrameType type) {
      received.merge(type, 1, Integer::sum);
    }

    @Override
    public void frameSent(FrameType type) {
      sent.merge(type, 1, Integer::sum);
    }

    @Override
    public void dataReceived(int bytes) {
      dataReceived += bytes;
    }

    @Override
    public void dataSent(int bytes) {
      dataSent += bytes;
    }

    @Override
    public void dialStarted() {
      pendingDials++;
    }

    @Override
    public void dialSettled() {
      pendingDials--;
    }

    @Override
    public void dialAnswered(DialStatus status, long nanos) {
      assertThat(nanos).isNotNegative();
      dialsAnswered.merge(status, 1, Integer::sum);
    }

    @Override
    public void streamOpened() {
      open++;
    }

    @Override
    public void streamClosed(StreamOutcome outcome, boolean wasOpen) {
      ended.merge(outcome, 1, Integer::sum);
      if (wasOpen) {
        open--;
      }
    }

    @Override
    public void creditStalled() {
      stalls++;
      stalledNow++;
    }

    @Override
    public void creditResumed(long nanos) {
      resumes++;
      stalledNow--;
      stalledNanos += nanos;
    }
  }
}
