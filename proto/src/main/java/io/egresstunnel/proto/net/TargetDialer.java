package io.egresstunnel.proto.net;

import io.egresstunnel.proto.DialStatus;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ConnectTimeoutException;
import io.netty.channel.EventLoop;
import io.netty.resolver.NoopAddressResolverGroup;
import io.netty.util.NetUtil;
import io.netty.util.concurrent.Future;
import io.netty.util.concurrent.Promise;
import java.net.ConnectException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.NoRouteToHostException;
import java.net.UnknownHostException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.RejectedExecutionException;

/**
 * Connects data channels to targets. IP literals connect at once; names are resolved on a small
 * dedicated pool (the JDK resolver blocks, and an event loop must never block), then the address is
 * connected on the caller's event loop. Connected channels run with AUTO_READ off and half-closure
 * allowed, ready for a relay.
 */
public final class TargetDialer implements AutoCloseable {
  private final ExecutorService resolverPool;

  public TargetDialer(int resolverThreads) {
    this.resolverPool =
        Executors.newFixedThreadPool(
            resolverThreads,
            r -> {
              Thread t = new Thread(r, "egress-resolver");
              t.setDaemon(true);
              return t;
            });
  }

  /** Connects to {@code host:port} on {@code loop}; the channel is registered on that loop. */
  public Future<Channel> connect(EventLoop loop, String host, int port, int timeoutMillis) {
    Promise<Channel> promise = loop.newPromise();
    byte[] literal = NetUtil.createByteArrayFromIpAddressString(host);
    if (literal != null) {
      try {
        connect(loop, InetAddress.getByAddress(literal), port, timeoutMillis, promise);
      } catch (UnknownHostException e) {
        promise.tryFailure(e);
      }
      return promise;
    }
    try {
      resolverPool.execute(
          () -> {
            try {
              InetAddress address = InetAddress.getByName(host);
              loop.execute(() -> connect(loop, address, port, timeoutMillis, promise));
            } catch (UnknownHostException e) {
              promise.tryFailure(e);
            } catch (RejectedExecutionException e) {
              promise.tryFailure(e);
            }
          });
    } catch (RejectedExecutionException e) {
      promise.tryFailure(e);
    }
    return promise;
  }

  /** Connects to a resolved address, for callers that checked it against a policy first. */
  public Future<Channel> connect(EventLoop loop, InetAddress address, int port, int timeoutMillis) {
    Promise<Channel> promise = loop.newPromise();
    connect(loop, address, port, timeoutMillis, promise);
    return promise;
  }

  /**
   * Resolves {@code host} off the event loop (literals need no lookup); completes on {@code loop}.
   */
  public Future<InetAddress> resolve(EventLoop loop, String host) {
    Promise<InetAddress> promise = loop.newPromise();
    byte[] literal = NetUtil.createByteArrayFromIpAddressString(host);
    if (literal != null) {
      try {
        return promise.setSuccess(InetAddress.getByAddress(literal));
      } catch (UnknownHostException e) {
        return promise.setFailure(e);
      }
    }
    try {
      resolverPool.execute(
          () -> {
            try {
              promise.trySuccess(InetAddress.getByName(host));
            } catch (UnknownHostException e) {
              promise.tryFailure(e);
            }
          });
    } catch (RejectedExecutionException e) {
      promise.tryFailure(e);
    }
    return promise;
  }

  private static void connect(
      EventLoop loop, InetAddress address, int port, int timeoutMillis, Promise<Channel> promise) {
    ChannelFuture f =
        new Bootstrap()
            .group(loop)
            .channel(Transport.socketChannel())
            .resolver(NoopAddressResolverGroup.INSTANCE)
            .option(ChannelOption.AUTO_READ, false)
            .option(ChannelOption.ALLOW_HALF_CLOSURE, true)
            .option(ChannelOption.TCP_NODELAY, true)
            .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, timeoutMillis)
            .handler(
                new ChannelInitializer<Channel>() {
                  @Override
                  protected void initChannel(Channel ch) {
                    Transport.tuneStreamSocket(ch);
                  }
                })
            .connect(new InetSocketAddress(address, port));
    f.addListener(
        done -> {
          if (done.isSuccess()) {
            if (!promise.trySuccess(f.channel())) {
              f.channel().close(); // the caller gave up meanwhile
            }
          } else {
            promise.tryFailure(done.cause());
          }
        });
    promise.addListener(
        p -> {
          if (p.isCancelled()) {
            f.cancel(false);
            f.channel().close();
          }
        });
  }

  /** Maps a failed connect or resolve to the protocol's dial status. */
  public static DialStatus classify(Throwable cause) {
    if (cause instanceof ConnectTimeoutException) {
      return DialStatus.TIMEOUT;
    }
    if (cause instanceof UnknownHostException) {
      return DialStatus.RESOLVE_FAILED;
    }
    if (cause instanceof NoRouteToHostException) {
      return DialStatus.UNREACHABLE;
    }
    String text = String.valueOf(cause.getMessage()).toLowerCase(java.util.Locale.ROOT);
    if (text.contains("unreachable") || text.contains("no route")) {
      return DialStatus.UNREACHABLE;
    }
    if (cause instanceof ConnectException || text.contains("refused")) {
      return DialStatus.REFUSED;
    }
    return DialStatus.INTERNAL_ERROR;
  }

  /** One line for a failed dial, e.g. "connection refused: 127.0.0.1:1". */
  public static String describe(Throwable cause, String target) {
    return switch (classify(cause)) {
      case TIMEOUT -> "dial timed out: " + target;
      case RESOLVE_FAILED -> "cannot resolve host: " + target;
      case UNREACHABLE -> "target unreachable: " + target;
      case REFUSED -> "connection refused: " + target;
      default -> "dial failed: " + target + ": " + cause.getMessage();
    };
  }

  @Override
  public void close() {
    resolverPool.shutdownNow();
  }
}
