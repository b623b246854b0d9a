package io.egresstunnel.proto.net;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.QueryStringDecoder;
import io.netty.util.concurrent.EventExecutor;
import io.netty.util.concurrent.GlobalEventExecutor;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.RejectedExecutionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The small HTTP server of an admin listener, for both commands: endpoints by path, and {@code
 * /metrics} in the Prometheus text format 0.0.4. An endpoint answers at once or later (a future);
 * the answer is written on the connection's event loop either way.
 */
public final class AdminHttp {
  private static final Logger log = LoggerFactory.getLogger(AdminHttp.class);

  /** The path of the Prometheus endpoint. */
  public static final String METRICS_PATH = "/metrics";

  /** Requests are a GET line and a few headers; nothing larger is accepted. */
  private static final int MAX_REQUEST_BYTES = 4096;

  private static final PrometheusTextFormatWriter TEXT_FORMAT = PrometheusTextFormatWriter.create();

  private AdminHttp() {}

  /** An endpoint's answer. */
  public record Response(HttpResponseStatus status, String contentType, byte[] body) {
    /** A plain-text answer; a newline is added. */
    public static Response text(HttpResponseStatus status, String body) {
      return new Response(
          status, "text/plain; charset=utf-8", (body + "\n").getBytes(StandardCharsets.UTF_8));
    }
  }

  /**
   * Answers a request for one path. Runs on an event loop: it must not block; work that takes time
   * goes elsewhere and completes the future from there.
   */
  @FunctionalInterface
  public interface Endpoint {
    CompletableFuture<Response> answer(QueryStringDecoder query);

    /** An endpoint that answers at once. */
    static Endpoint of(java.util.function.Function<QueryStringDecoder, Response> answer) {
      return query -> CompletableFuture.completedFuture(answer.apply(query));
    }
  }

  /**
   * A server bootstrap for an admin listener on {@code group} that serves {@code endpoints} by
   * path, and {@code /metrics} from {@code metrics} unless that is null. Other paths get 404.
   */
  public static ServerBootstrap bootstrap(
      EventLoopGroup group, Map<String, Endpoint> endpoints, PrometheusRegistry metrics) {
    Map<String, Endpoint> routes = new java.util.HashMap<>(endpoints);
    if (metrics != null) {
      routes.put(METRICS_PATH, query -> scrapeAsync(metrics));
    }
    return new ServerBootstrap()
        .group(group)
        .channel(Transport.serverChannel())
        .childHandler(
            new ChannelInitializer<Channel>() {
              @Override
              protected void initChannel(Channel ch) {
                ch.pipeline()
                    .addLast("http", new HttpServerCodec())
                    .addLast("http-aggregator", new HttpObjectAggregator(MAX_REQUEST_BYTES))
                    .addLast("admin", new Handler(Map.copyOf(routes)));
              }
            });
  }

  /** {@link #scrape} on a shared background thread. */
  public static CompletableFuture<Response> scrapeAsync(PrometheusRegistry registry) {
    return CompletableFuture.supplyAsync(() -> scrape(registry), GlobalEventExecutor.INSTANCE);
  }

  /** {@code registry}'s metrics in the Prometheus text format 0.0.4. */
  public static Response scrape(PrometheusRegistry registry) {
    try {
      ByteArrayOutputStream out = new ByteArrayOutputStream(16 * 1024);
      TEXT_FORMAT.write(out, registry.scrape());
      return new Response(HttpResponseStatus.OK, TEXT_FORMAT.getContentType(), out.toByteArray());
    } catch (IOException | RuntimeException e) {
      log.warn("collecting metrics failed", e);
      return Response.text(
          HttpResponseStatus.INTERNAL_SERVER_ERROR, "collecting metrics failed: " + e);
    }
  }

  /** Writes {@code response}, then closes the connection unless it is kept alive. */
  private static void send(ChannelHandlerContext ctx, boolean keepAlive, Response response) {
    FullHttpResponse http =
        new DefaultFullHttpResponse(
            HttpVersion.HTTP_1_1, response.status(), Unpooled.wrappedBuffer(response.body()));
    http.headers().set(HttpHeaderNames.CONTENT_TYPE, response.contentType());
    HttpUtil.setContentLength(http, response.body().length);
    HttpUtil.setKeepAlive(http, keepAlive);
    ChannelFuture f = ctx.writeAndFlush(http);
    if (!keepAlive) {
      f.addListener(ChannelFutureListener.CLOSE);
    }
  }

  /** Routes each request by its path. */
  private static final class Handler extends SimpleChannelInboundHandler<FullHttpRequest> {
    private final Map<String, Endpoint> endpoints;

    Handler(Map<String, Endpoint> endpoints) {
      this.endpoints = endpoints;
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, FullHttpRequest request) {
      QueryStringDecoder query = new QueryStringDecoder(request.uri());
      boolean keepAlive = HttpUtil.isKeepAlive(request);
      Endpoint endpoint = endpoints.get(query.path());
      CompletableFuture<Response> answer;
      if (endpoint == null) {
        answer =
            CompletableFuture.completedFuture(
                Response.text(
                    HttpResponseStatus.NOT_FOUND,
                    "not found; try " + String.join(", ", new TreeSet<>(endpoints.keySet()))));
      } else {
        try {
          answer = endpoint.answer(query);
        } catch (RuntimeException e) {
          answer = CompletableFuture.failedFuture(e);
        }
      }
      EventExecutor loop = ctx.executor();
      answer.whenComplete(
          (response, error) -> {
            Response r =
                error == null
                    ? response
                    : Response.text(HttpResponseStatus.INTERNAL_SERVER_ERROR, error.toString());
            if (loop.inEventLoop()) {
              send(ctx, keepAlive, r);
              return;
            }
            try {
              loop.execute(() -> send(ctx, keepAlive, r));
            } catch (RejectedExecutionException e) {
              // the listener is shutting down: nobody is waiting for the answer
            }
          });
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      log.debug("admin connection from {} failed", ctx.channel().remoteAddress(), cause);
      ctx.close();
    }
  }
}
