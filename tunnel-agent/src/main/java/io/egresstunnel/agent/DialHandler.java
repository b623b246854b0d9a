package io.egresstunnel.agent;

import io.egresstunnel.agent.policy.DialPolicy;
import io.egresstunnel.proto.Dial;
import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.net.TargetDialer;
import io.egresstunnel.proto.session.TunnelStream;
import io.netty.channel.Channel;
import io.netty.channel.EventLoop;
import io.netty.util.concurrent.Future;
import java.net.InetAddress;
import java.time.Duration;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Answers the server's dials: authorizes each target against this node's policy, resolves names off
 * the event loop, and connects on the session's event loop so that the stream needs no locks. A
 * refusal or failure ends that stream only.
 */
final class DialHandler {
  private static final Logger log = LoggerFactory.getLogger(DialHandler.class);

  private final Supplier<DialPolicy> policies;
  private final TargetDialer dialer;
  private final int maxTimeoutMillis;

  /** {@code policies} gives the policy in force now; it may change between dials. */
  DialHandler(Supplier<DialPolicy> policies, TargetDialer dialer, Duration dialTimeout) {
    this.policies = policies;
    this.dialer = dialer;
    this.maxTimeoutMillis = (int) Math.min(Integer.MAX_VALUE, dialTimeout.toMillis());
  }

  void dial(TunnelStream stream, Dial dial) {
    EventLoop loop = stream.session().eventLoop();
    DialPolicy policy = policies.get();
    int timeout =
        dial.timeoutMillis() == 0
            ? maxTimeoutMillis
            : Math.min(dial.timeoutMillis(), maxTimeoutMillis);
    if (policy.isNodeName(dial.host())) {
      InetAddress address;
      try {
        address = policy.nodeNameTarget();
      } catch (IllegalStateException e) {
        stream.dialFailed(DialStatus.RESOLVE_FAILED, e.getMessage());
        return;
      }
      authorizeAndConnect(stream, loop, address, dial.port(), timeout, null);
      return;
    }
    boolean literal =
        io.netty.util.NetUtil.isValidIpV4Address(dial.host())
            || io.netty.util.NetUtil.isValidIpV6Address(dial.host());
    String name = literal ? null : dial.host();
    if (name != null) {
      DialPolicy.Decision admitted = policy.checkName(name);
      if (!admitted.allowed()) {
        log.info("refused dial of stream {}: {}", stream.id(), admitted.reason());
        stream.dialFailed(DialStatus.FORBIDDEN, admitted.reason());
        return;
      }
    }
    Future<InetAddress> resolved = dialer.resolve(loop, dial.host());
    resolved.addListener(
        f -> {
          if (!f.isSuccess()) {
            stream.dialFailed(
                DialStatus.RESOLVE_FAILED, TargetDialer.describe(f.cause(), stream.target()));
            return;
          }
          authorizeAndConnect(stream, loop, resolved.getNow(), dial.port(), timeout, name);
        });
  }

  /** {@code name} is the host name {@code address} was resolved from, or null for a literal. */
  private void authorizeAndConnect(
      TunnelStream stream,
      EventLoop loop,
      InetAddress address,
      int port,
      int timeout,
      String name) {
    DialPolicy.Decision decision = policies.get().check(address, port, name);
    if (!decision.allowed()) {
      log.info("refused dial of stream {}: {}", stream.id(), decision.reason());
      stream.dialFailed(DialStatus.FORBIDDEN, decision.reason());
      return;
    }
    Future<Channel> connected = dialer.connect(loop, address, port, timeout);
    connected.addListener(
        f -> {
          if (f.isSuccess()) {
            stream.dialSucceeded(connected.getNow());
          } else if (f.isCancelled() || loop.isShuttingDown()) {
            // The agent is going away: the server answers 503, as for any lost agent.
            stream.dialFailed(DialStatus.DRAINING, "the agent is shutting down");
          } else {
            DialStatus status = TargetDialer.classify(f.cause());
            log.debug("dial of stream {} to {} failed: {}", stream.id(), stream.target(), status);
            stream.dialFailed(status, TargetDialer.describe(f.cause(), stream.target()));
          }
        });
  }
}
