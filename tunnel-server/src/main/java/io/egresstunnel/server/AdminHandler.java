package io.egresstunnel.server;

import io.egresstunnel.proto.net.AdminHttp;
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
import java.util.List;
import java.util.concurrent.CompletableFuture;

/**
 * The admin listener:
 *
 * <ul>
 *   <li>{@code /healthz}: the process is alive;
 *   <li>{@code /readyz}: every readiness check passes (listeners, route source synced, enough
 *       agents, not draining); {@code /readyz?verbose} lists each check and why;
 *   <li>{@code /routez?target=HOST:PORT}: where a CONNECT to that target would go ({@code via
 *       NODE}, {@code direct}, or {@code no-agent NODE});
 *   <li>{@code /status}: agents and open streams as JSON ({@link ServerStatus});
 *   <li>{@code /metrics}: Prometheus metrics, text format 0.0.4 (docs/metrics.md).
 * </ul>
 */
final class AdminHandler extends SimpleChannelInboundHandler<FullHttpRequest> {
  private static final String TEXT = "text/plain; charset=utf-8";

  /** An answer: status, content type and body. */
  record Reply(HttpResponseStatus status, String contentType, byte[] body) {
    static Reply text(HttpResponseStatus status, String text) {
      return new Reply(status, TEXT, (text + "\n").getBytes(StandardCharsets.UTF_8));
    }
  }

  private final TunnelServer server;

  AdminHandler(TunnelServer server) {
    this.server = server;
  }

  @Override
  protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) {
    QueryStringDecoder query = new QueryStringDecoder(request.uri());
    boolean keepAlive = HttpUtil.isKeepAlive(request);
    CompletableFuture<Reply> reply;
    try {
      reply = route(query);
    } catch (RuntimeException e) {
      reply =
          CompletableFuture.completedFuture(
              Reply.text(HttpResponseStatus.INTERNAL_SERVER_ERROR, e.toString()));
    }
    reply.whenComplete(
        (r, error) ->
            ctx.executor()
                .execute(
                    () ->
                        write(
                            ctx,
                            keepAlive,
                            error == null
                                ? r
                                : Reply.text(
                                    HttpResponseStatus.INTERNAL_SERVER_ERROR, error.toString()))));
  }

  private CompletableFuture<Reply> route(QueryStringDecoder query) {
    return switch (query.path()) {
      case "/healthz" -> CompletableFuture.completedFuture(Reply.text(HttpResponseStatus.OK, "ok"));
      case "/readyz" -> CompletableFuture.completedFuture(readyz(query));
      case "/routez" -> CompletableFuture.completedFuture(routez(query));
      case "/status" ->
          ServerStatus.collect(server)
              .thenApply(
                  report ->
                      new Reply(
                          HttpResponseStatus.OK,
                          "application/json",
                          ServerStatus.toJson(report).getBytes(StandardCharsets.UTF_8)));
      case AdminHttp.METRICS_PATH ->
          AdminHttp.scrapeAsync(server.metrics().registry())
              .thenApply(m -> new Reply(m.status(), m.contentType(), m.body()));
      default ->
          CompletableFuture.completedFuture(
              Reply.text(
                  HttpResponseStatus.NOT_FOUND,
                  "not found; try /healthz, /readyz?verbose, /routez?target=HOST:PORT, /status"
                      + " or /metrics"));
    };
  }

  private Reply readyz(QueryStringDecoder query) {
    List<TunnelServer.Check> checks = server.readiness();
    boolean ready = checks.stream().allMatch(TunnelServer.Check::ok);
    HttpResponseStatus status =
        ready ? HttpResponseStatus.OK : HttpResponseStatus.SERVICE_UNAVAILABLE;
    if (!query.parameters().containsKey("verbose")) {
      return Reply.text(status, ready ? "ok" : "not ready");
    }
    StringBuilder b = new StringBuilder();
    for (TunnelServer.Check c : checks) {
      b.append(c.ok() ? "[+] " : "[-] ")
          .append(c.name())
          .append(c.ok() ? " ok: " : " failed: ")
          .append(c.detail())
          .append('\n');
    }
    b.append(ready ? "readyz check passed" : "readyz check failed");
    return Reply.text(status, b.toString());
  }

  private Reply routez(QueryStringDecoder query) {
    String target = query.parameters().getOrDefault("target", List.of("")).get(0);
    try {
      ConnectTarget t = ConnectTarget.parse(target);
      return Reply.text(HttpResponseStatus.OK, describe(server.router().route(t.host(), t.port())));
    } catch (IllegalArgumentException e) {
      return Reply.text(
          HttpResponseStatus.BAD_REQUEST,
          "usage: /routez?target=HOST:PORT (" + e.getMessage() + ")");
    }
  }

  private static void write(ChannelHandlerContext ctx, boolean keepAlive, Reply reply) {
    FullHttpResponse response =
        new DefaultFullHttpResponse(
            HttpVersion.HTTP_1_1, reply.status(), Unpooled.wrappedBuffer(reply.body()));
    response.headers().set(HttpHeaderNames.CONTENT_TYPE, reply.contentType());
    HttpUtil.setContentLength(response, reply.body().length);
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
