package io.egresstunnel.server;

import io.egresstunnel.proto.session.SessionPipeline;
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
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Sits before the websocket handshake: an upgrade without a valid token gets 401, one for a node
 * its token may not speak for gets 403, each with a one-line reason, and no session is created. An
 * admitted request continues with the authenticated node recorded on the channel.
 */
final class AgentAuthHandler extends ChannelInboundHandlerAdapter {
  private static final Logger log = LoggerFactory.getLogger(AgentAuthHandler.class);

  /** The node an agent authenticated for; its hello must declare the same node. */
  static final AttributeKey<String> AUTHENTICATED_NODE =
      AttributeKey.valueOf(AgentAuthHandler.class, "node");

  private final AgentAuthenticator authenticator;

  AgentAuthHandler(AgentAuthenticator authenticator) {
    this.authenticator = authenticator;
  }

  @Override
  public void channelRead(ChannelHandlerContext ctx, Object msg) {
    if (!(msg instanceof FullHttpRequest request)) {
      ReferenceCountUtil.release(msg);
      ctx.close();
      return;
    }
    String node = request.headers().get(SessionPipeline.NODE_HEADER);
    AgentAuthenticator.Verdict verdict =
        authenticator.check(request.headers().get(HttpHeaderNames.AUTHORIZATION), node);
    if (!verdict.admitted()) {
      request.release();
      log.warn(
          "refused agent upgrade from {} (node {}): {} {}",
          ctx.channel().remoteAddress(),
          node,
          verdict.status().code(),
          verdict.reason());
      FullHttpResponse response =
          new DefaultFullHttpResponse(
              HttpVersion.HTTP_1_1,
              verdict.status(),
              Unpooled.copiedBuffer(verdict.reason() + "\n", StandardCharsets.UTF_8));
      response
          .headers()
          .set(HttpHeaderNames.CONTENT_TYPE, "text/plain; charset=utf-8")
          .setInt(HttpHeaderNames.CONTENT_LENGTH, response.content().readableBytes())
          .set(HttpHeaderNames.CONNECTION, "close");
      ctx.writeAndFlush(response).addListener(ChannelFutureListener.CLOSE);
      return;
    }
    ctx.channel().attr(AUTHENTICATED_NODE).set(node);
    ctx.pipeline().remove(this);
    ctx.fireChannelRead(request);
  }
}
