package io.egresstunnel.proto.session;

import io.egresstunnel.proto.FrameDecoder;
import io.egresstunnel.proto.FrameEncoder;
import io.netty.channel.ChannelPipeline;
import io.netty.handler.timeout.IdleStateHandler;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/** The tail every tunnel websocket pipeline ends with, on the server and on the agent alike. */
public final class SessionPipeline {
  /** The path agents open their websocket on. */
  public static final String TUNNEL_PATH = "/v1/tunnel";

  /**
   * The port of the server's agent listener unless {@code --agent-listen} says otherwise; also the
   * port of an agent's {@code --server} URL that names none (ws:// and wss:// alike).
   */
  public static final int DEFAULT_AGENT_PORT = 8091;

  /** The upgrade request header in which an agent names its node. */
  public static final String NODE_HEADER = "X-Egress-Tunnel-Node";

  private static final FrameEncoder ENCODER = new FrameEncoder();

  private SessionPipeline() {}

  /** The name of the TLS handler, if the websocket runs over TLS. */
  public static final String TLS_HANDLER = "tls";

  /**
   * Adds keepalive (ping when quiet for {@code pingInterval}, close when silent for {@code
   * pingTimeout}), the frame decoder and encoder, and {@code session}, after whatever carries the
   * websocket.
   *
   * <p>Keepalive sits right above the bytes (after {@link #TLS_HANDLER}, if there is one), below
   * the websocket codec: every byte the peer sends counts as a sign of life, pongs and pings
   * included, which Netty's websocket protocol handler answers or drops before a handler behind it
   * could see them.
   */
  public static void install(
      ChannelPipeline p, Duration pingInterval, Duration pingTimeout, TunnelSession session) {
    IdleStateHandler keepalive =
        new IdleStateHandler(
            pingTimeout.toMillis(), pingInterval.toMillis(), 0, TimeUnit.MILLISECONDS);
    if (p.get(TLS_HANDLER) != null) {
      p.addAfter(TLS_HANDLER, "keepalive", keepalive);
    } else {
      p.addFirst("keepalive", keepalive);
    }
    p.addLast("frame-decoder", new FrameDecoder(session.localConfig().maxFramePayload()));
    p.addLast("frame-encoder", ENCODER);
    p.addLast("session", session);
  }
}
