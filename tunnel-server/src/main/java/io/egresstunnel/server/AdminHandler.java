package io.egresstunnel.server;

import io.netty.buffer.Unpooled;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import java.nio.charset.StandardCharsets;

/**
 * The admin listener: {@code /healthz} (alive), {@code /readyz} (listeners up), and {@code
 * /routez?target=HOST:PORT} (where a CONNECT to that target would go: {@code via NODE}, {@code
 * direct}, or {@code no-agent NODE}).
 */
final class AdminHandler extends SimpleChannelInboundHandler<FullHttpRequest> {
  private final TunnelServer server;

  AdminHandler(TunnelServer server) {
    this.server = server;
  }

  @Override
  protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) {
    QueryStringDecoder query = new QueryStringDecoder(request.uri());
    String path = query.path();
    HttpResponseStatus status;
    String body;
    switch (path) {
      case "/healthz" -> {
        status = HttpResponseStatus.OK;
        body = "ok";
      }
      case "/readyz" -> {
        boolean ready = server.isReady();
        status = ready ? HttpResponseStatus.OK : HttpResponseStatus.SERVICE_UNAVAILABLE;
        body =
            (ready ? "ok" : "not ready")
                + ": "
                + server.registry().agentCount()
                + " agent(s)"
                + (server.apiRoutes() == null ? "" : "; routes " + server.apiRoutes().describe());
      }
      case "/routez" -> {
        String target = query.parameters().getOrDefault("target", java.util.List.of("")).get(0);
        try {
          ConnectTarget t = ConnectTarget.parse(target);
          status = HttpResponseStatus.OK;
          body = describe(server.router().route(t.host(), t.port()));
        } catch (IllegalArgumentException e) {
          status = HttpResponseStatus.BAD_REQUEST;
          body = "usage: /routez?target=HOST:PORT (" + e.getMessage() + ")";
        }
      }
      default -> {
        status = HttpResponseStatus.NOT_FOUND;
        body = "not found; try /healthz, /readyz or /routez?target=HOST:PORT";
      }
    }
    FullHttpResponse response =
        new DefaultFullHttpResponse(
            HttpVersion.HTTP_1_1,
            status,
            Unpooled.copiedBuffer(body + "\n", StandardCharsets.UTF_8));
    response.headers().set(HttpHeaderNames.CONTENT_TYPE, "text/plain; charset=utf-8");
    HttpUtil.setContentLength(response, response.content().readableBytes());
    boolean keepAlive = HttpUtil.isKeepAlive(request);
    HttpUtil.setKeepAlive(response, keepAlive);
    var f = ctx.writeAndFlush(response);
    if (!keepAlive) {
      f.addListener(ChannelFutureListener.CLOSE);
    }
  }

  private String describe(io.egresstunnel.routing.Route route) {
    if (route instanceof io.egresstunnel.routing.Route.ViaAgent via) {
      return (server.registry().session(via.node()) != null ? "via " : "no-agent ") + via.node();
    }
    return "direct";
  }
}
