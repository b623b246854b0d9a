package io.egresstunnel.server.agents;

import io.egresstunnel.proto.config.RateLimitedLog;
import io.egresstunnel.proto.net.Addresses;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.proto.session.UpgradeRefusal;
import io.egresstunnel.server.PeerCertificates;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.util.AttributeKey;
import io.netty.util.ReferenceCountUtil;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sits before the websocket handshake and admits or refuses the upgrade before any frame is read:
 * 503 when the server holds its maximum of agents, 401 for a missing or invalid credential, 403 for
 * a node the credential may not speak for, each with a one-line reason in the body and the kind of
 * refusal ({@link UpgradeRefusal}) in the {@value UpgradeRefusal#HEADER} header, and no session is
 * created. An admitted request continues with the authenticated node recorded on the channel. While
 * a TokenReview is out, the channel reads nothing; a review slower than the handshake timeout gets
 * 503.
 */
public final class AgentAuthHandler extends ChannelInboundHandlerAdapter {
  private static final Logger log = LoggerFactory.getLogger(AgentAuthHandler.class);

  /**
   * A server's log of refused upgrades: one line per status and reason per 10 s, so that a retrying
   * agent or a scanner cannot flood it.
   */
  public static RateLimitedLog newRefusalLog() {
    return new RateLimitedLog(log, Duration.ofSeconds(10));
  }

  /** The node an agent authenticated for; its hello must declare the same node. */
  static final AttributeKey<String> AUTHENTICATED_NODE =
      AttributeKey.valueOf(AgentAuthHandler.class, "node");

  private static final AttributeKey<String> AUTHENTICATED_AS =
      AttributeKey.valueOf(AgentAuthHandler.class, "identity");

  /**
   * How the agent on {@code channel} was admitted: {@link AgentAuthenticator#ANONYMOUS}, {@code
   * token (--agent-token-file)}, {@code certificate CN=...} or {@code ServiceAccount token of ...};
   * null if it was not seen by this handler.
   */
  public static String authenticatedAs(io.netty.channel.Channel channel) {
    return channel.attr(AUTHENTICATED_AS).get();
  }

  private final AgentAuthenticator authenticator;
  private final AgentRegistry registry;
  private final int maxAgents;
  private final long timeoutMillis;
  private final java.util.function.BooleanSupplier draining;
  private final Consumer<UpgradeRefusal> refused;
  private final RateLimitedLog refusals;

  /**
   * @param refused counts a refused upgrade by why
   * @param refusals the server's {@link #newRefusalLog}
   */
  public AgentAuthHandler(
      AgentAuthenticator authenticator,
      AgentRegistry registry,
      int maxAgents,
      long timeoutMillis,
      java.util.function.BooleanSupplier draining,
      Consumer<UpgradeRefusal> refused,
      RateLimitedLog refusals) {
    this.draining = draining;
    this.refused = refused;
    this.refusals = refusals;
    this.authenticator = authenticator;
    this.registry = registry;
    this.maxAgents = maxAgents;
    this.timeoutMillis = timeoutMillis;
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof FullHttpRequest request)) {
      ReferenceCountUtil.release(msg);
      ctx.close();
      return;
    }
    String node = request.headers().get(SessionPipeline.NODE_HEADER);
    if (draining.getAsBoolean()) {
      refuse(
          ctx,
          request,
          node,
          AgentAuthenticator.Verdict.refused(
              UpgradeRefusal.DRAINING, "this tunnel server is shutting down"));
      return;
    }
    if (registry.agentCount() >= maxAgents) {
      refuse(
          ctx,
          request,
          node,
          AgentAuthenticator.Verdict.refused(
              UpgradeRefusal.MAX_AGENTS,
              "this server already holds its maximum of " + maxAgents + " agents (--max-agents)"));
      return;
    }
    CompletableFuture<AgentAuthenticator.Verdict> verdict =
        authenticator.authenticate(
            PeerCertificates.of(ctx), request.headers().get(HttpHeaderNames.AUTHORIZATION), node);
    if (verdict.isDone()) {
      decide(ctx, request, node, verdict.join());
      return;
    }
    ctx.channel().config().setAutoRead(false);
    verdict
        .orTimeout(timeoutMillis, TimeUnit.MILLISECONDS)
        .whenComplete(
            (v, error) ->
                ctx.executor()
                    .execute(
                        () -> {
                          ctx.channel().config().setAutoRead(true);
                          if (!ctx.channel().isActive()) {
                            request.release();
                            return;
                          }
                          decide(ctx, request, node, error == null ? v : unavailable(error));
                        }));
  }

  private static AgentAuthenticator.Verdict unavailable(Throwable error) {
    Throwable cause =
        error instanceof CompletionException && error.getCause() != null ? error.getCause() : error;
    log.warn("could not review an agent's token: {}", cause.toString());
    String why;
    if (cause instanceof TimeoutException) {
      why = "the token review timed out; try again";
    } else if (cause instanceof KubernetesClientException k && k.getCode() > 0) {
      why = "the token review failed: the Kubernetes API answered " + k.getCode();
    } else {
      why = "the token review failed: " + cause.getClass().getSimpleName();
    }
    return AgentAuthenticator.Verdict.refused(UpgradeRefusal.REVIEW_FAILED, why);
  }

  private void decide(
      ChannelHandlerContext ctx,
      FullHttpRequest request,
      String node,
      AgentAuthenticator.Verdict verdict) {
    if (!verdict.admitted()) {
      refuse(ctx, request, node, verdict);
      return;
    }
    if (authenticator.required()) {
      log.debug(
          "agent {} from {} authenticated for node {}",
          verdict.identity(),
          Addresses.text(ctx.channel().remoteAddress()),
          verdict.node());
    }
    ctx.channel().attr(AUTHENTICATED_NODE).set(verdict.node());
    ctx.channel().attr(AUTHENTICATED_AS).set(verdict.identity());
    ctx.pipeline().remove(this);
    ctx.fireChannelRead(request);
  }

  private void refuse(
      ChannelHandlerContext ctx,
      FullHttpRequest request,
      String node,
      AgentAuthenticator.Verdict verdict) {
    request.release();
    refused.accept(verdict.refusal());
    refusals.warn(
        verdict.status().code() + " " + verdict.reason(),
        "refused agent upgrade from {} (node {}): {} {}: {}",
        Addresses.text(ctx.channel().remoteAddress()),
        node,
        verdict.status().code(),
        verdict.refusal().label,
        verdict.reason());
    FullHttpResponse response =
        new DefaultFullHttpResponse(
            HttpVersion.HTTP_1_1,
            verdict.status(),
            Unpooled.copiedBuffer(verdict.reason() + "\n", StandardCharsets.UTF_8));
    response
        .headers()
        .set(HttpHeaderNames.CONTENT_TYPE, "text/plain; charset=utf-8")
        .set(UpgradeRefusal.HEADER, verdict.refusal().label)
        .setInt(HttpHeaderNames.CONTENT_LENGTH, response.content().readableBytes())
        .set(HttpHeaderNames.CONNECTION, "close");
    ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
  }
}
