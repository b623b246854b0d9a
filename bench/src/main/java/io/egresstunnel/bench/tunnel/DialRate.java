package io.egresstunnel.bench.tunnel;

import io.egresstunnel.bench.tunnel.LoadSupport.Via;
import io.egresstunnel.proto.net.Transport;
import io.netty.bootstrap.Bootstrap;
import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * New streams per second, and the time each takes, through HTTP CONNECT proxies beside direct
 * connections, from one non-blocking client (Netty, one event loop) so that the client is not what
 * limits the rate. A dial is what the apiserver does for each request: connect, {@code CONNECT
 * host:port}, read the 200, send one byte, read its echo, close. The echo target runs in this
 * process on its own event loop, at {@code --target}, which the tunnel must route (pod mode with
 * the address as a node's pod CIDR).
 *
 * <p>{@code java -cp bench/target/benchmarks.jar io.egresstunnel.bench.tunnel.DialRate --target
 * 127.0.0.2:24202 --via tunnel=127.0.0.1:24090 [--via squid=...] [--via direct] [--pids
 * NAME=PID,...] [--concurrency 64] [--seconds 5] [--runs 3]} prints a Markdown table: dials per
 * second (median), the median and 99th-percentile time of a dial, ratios to squid and direct, and
 * the CPU-milliseconds per dial of each path's processes. {@code --concurrency 1} gives the time a
 * path adds to one stream.
 */
public final class DialRate {
  private static final byte[] PING = {'!'};

  private DialRate() {}

  record Sample(long dials, long failures, double seconds, long[] nanos, double[] cpuSeconds) {
    double rate() {
      return dials / seconds;
    }
  }

  public static void main(String[] args) throws Exception {
    InetSocketAddress target = null;
    LoadSupport.Vias vias = new LoadSupport.Vias();
    int concurrency = 64;
    int seconds = 5;
    int runs = 3;
    for (int i = 0; i < args.length; i++) {
      switch (args[i]) {
        case "--target" -> target = LoadSupport.address(args[++i]);
        case "--via", "--pids" -> vias.take(args[i], args[++i]);
        case "--concurrency" -> concurrency = Integer.parseInt(args[++i]);
        case "--seconds" -> seconds = Integer.parseInt(args[++i]);
        case "--runs" -> runs = Integer.parseInt(args[++i]);
        default -> LoadSupport.usage("DialRate", "unknown argument " + args[i]);
      }
    }
    List<Via> paths = vias.list();
    if (target == null || paths.isEmpty()) {
      LoadSupport.usage("DialRate", "needs --target and at least one --via");
    }
    EventLoopGroup targetGroup = Transport.newGroup(1, new DefaultThreadFactory("target", true));
    EventLoopGroup clientGroup = Transport.newGroup(1, new DefaultThreadFactory("client", true));
    try {
      Channel echo = startEcho(targetGroup, target);
      for (Via p : paths) { // warm-up, unreported: the JIT needs tens of thousands of dials
        measure(clientGroup, p, target, Math.max(concurrency, 16), seconds);
      }
      Map<String, List<Sample>> samples = new LinkedHashMap<>();
      for (int r = 0; r < runs; r++) {
        for (Via p : paths) {
          samples
              .computeIfAbsent(p.name(), k -> new ArrayList<>())
              .add(measure(clientGroup, p, target, concurrency, seconds));
        }
      }
      print(samples);
      echo.close().sync();
    } finally {
      clientGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS);
      targetGroup.shutdownGracefully(0, 1, TimeUnit.SECONDS);
    }
  }

  private static Channel startEcho(EventLoopGroup group, InetSocketAddress at)
      throws InterruptedException {
    return new ServerBootstrap()
        .group(group)
        .channel(Transport.serverChannel())
        .option(ChannelOption.SO_BACKLOG, 4096)
        .childHandler(
            new ChannelInboundHandlerAdapter() {
              @Override
              public void channelRead(ChannelHandlerContext ctx, Object msg) {
                ctx.writeAndFlush(msg);
              }

              @Override
              public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                ctx.close();
              }

              @Override
              public boolean isSharable() {
                return true;
              }
            })
        .bind(at)
        .sync()
        .channel();
  }

  /** Keeps {@code concurrency} dials in flight for {@code seconds}. */
  private static Sample measure(
      EventLoopGroup group, Via p, InetSocketAddress target, int concurrency, int seconds)
      throws Exception {
    long deadline = System.nanoTime() + seconds * 1_000_000_000L;
    AtomicLong done = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    long[] nanos = new long[2_000_000];
    AtomicLong recorded = new AtomicLong();
    CountDownLatch finished = new CountDownLatch(concurrency);
    String t = target.getHostString() + ":" + target.getPort();
    ByteBuf request =
        Unpooled.unreleasableBuffer(
            Unpooled.directBuffer()
                .writeBytes(
                    ("CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\n\r\n")
                        .getBytes(StandardCharsets.US_ASCII)));
    Bootstrap b =
        new Bootstrap()
            .group(group)
            .channel(Transport.socketChannel())
            .option(ChannelOption.TCP_NODELAY, true);
    double[] cpuBefore = LoadSupport.cpuSeconds(p.pids());
    long start = System.nanoTime();
    Runnable[] next = new Runnable[1];
    next[0] =
        () -> {
          if (System.nanoTime() >= deadline) {
            finished.countDown();
            return;
          }
          long began = System.nanoTime();
          InetSocketAddress to = p.proxy() == null ? target : p.proxy();
          b.clone()
              .handler(
                  new ChannelInitializer<Channel>() {
                    @Override
                    protected void initChannel(Channel ch) {
                      ch.pipeline()
                          .addLast(
                              new Dial(
                                  p.proxy() != null,
                                  request,
                                  () -> {
                                    long n = recorded.getAndIncrement();
                                    if (n < nanos.length) {
                                      nanos[(int) n] = System.nanoTime() - began;
                                    }
                                    done.incrementAndGet();
                                    next[0].run();
                                  },
                                  () -> {
                                    failed.incrementAndGet();
                                    next[0].run();
                                  }));
                    }
                  })
              .connect(to)
              .addListener(
                  (ChannelFutureListener)
                      f -> {
                        if (!f.isSuccess()) {
                          failed.incrementAndGet();
                          f.channel().eventLoop().execute(next[0]);
                        }
                      });
        };
    for (int i = 0; i < concurrency; i++) {
      group.next().execute(next[0]);
    }
    finished.await();
    double elapsed = (System.nanoTime() - start) / 1e9;
    double[] cpu = LoadSupport.cpuSecondsSince(cpuBefore, p.pids());
    int n = (int) Math.min(recorded.get(), nanos.length);
    long[] times = Arrays.copyOf(nanos, n);
    Arrays.sort(times);
    return new Sample(done.get(), failed.get(), elapsed, times, cpu);
  }

  /** One dial's exchange: CONNECT (through a proxy), then one byte there and back, then close. */
  private static final class Dial extends ChannelInboundHandlerAdapter {
    private final boolean viaProxy;
    private final ByteBuf request;
    private final Runnable onDone;
    private final Runnable onFailure;
    private boolean connected;
    private boolean ended;
    private final StringBuilder head = new StringBuilder();

    Dial(boolean viaProxy, ByteBuf request, Runnable onDone, Runnable onFailure) {
      this.viaProxy = viaProxy;
      this.request = request;
      this.onDone = onDone;
      this.onFailure = onFailure;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
      if (viaProxy) {
        ctx.writeAndFlush(request.duplicate());
      } else {
        connected = true;
        ctx.writeAndFlush(Unpooled.wrappedBuffer(PING));
      }
    }

    @Override
    public void channelRead(ChannelHandlerContext ctx, Object msg) {
      ByteBuf in = (ByteBuf) msg;
      try {
        if (!connected) {
          while (in.isReadable() && !LoadSupport.headEnded(head)) {
            head.append((char) in.readByte());
          }
          if (!LoadSupport.headEnded(head)) {
            return;
          }
          if (!head.toString().startsWith("HTTP/1.1 200")) {
            end(ctx, false);
            return;
          }
          connected = true;
          ctx.writeAndFlush(Unpooled.wrappedBuffer(PING));
        }
        if (in.isReadable()) {
          end(ctx, true);
        }
      } finally {
        ReferenceCountUtil.release(in);
      }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
      end(ctx, false);
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
      end(ctx, false);
    }

    private void end(ChannelHandlerContext ctx, boolean success) {
      if (ended) {
        return;
      }
      ended = true;
      ctx.close();
      (success ? onDone : onFailure).run();
    }
  }

  private static void print(Map<String, List<Sample>> samples) {
    double squid = median(samples.getOrDefault("squid", List.of()));
    double direct = median(samples.getOrDefault("direct", List.of()));
    double directP50 = percentile(samples.getOrDefault("direct", List.of()), 0.5);
    System.out.println(
        "| path | dials/s, median (each run) | × squid | × direct | ms per dial, p50 / p99"
            + " | ms added (p50) | CPU-ms per dial (per process) | failed |");
    System.out.println("|---|---|---|---|---|---|---|---|");
    samples.forEach(
        (name, list) -> {
          double rate = median(list);
          long dials = list.stream().mapToLong(Sample::dials).sum();
          long failures = list.stream().mapToLong(Sample::failures).sum();
          double[] cpu = LoadSupport.sum(list.stream().map(Sample::cpuSeconds).toList());
          double p50 = percentile(list, 0.5);
          System.out.printf(
              "| %s | **%.0f** (%s) | %s | %s | %.3f / %.3f | %s | %s | %d |%n",
              name,
              rate,
              String.join(" ", list.stream().map(s -> LoadSupport.fmt("%.0f", s.rate())).toList()),
              LoadSupport.ratio(rate, squid),
              LoadSupport.ratio(rate, direct),
              p50,
              percentile(list, 0.99),
              Double.isNaN(directP50) || name.equals("direct")
                  ? "—"
                  : LoadSupport.fmt("%+.3f", p50 - directP50),
              LoadSupport.cpuCell(cpu, dials / 1000.0, "%.3f"),
              failures);
        });
  }

  private static double median(List<Sample> list) {
    return LoadSupport.median(list.stream().mapToDouble(Sample::rate));
  }

  /** The {@code q} quantile of the dial times of all runs, in milliseconds. */
  private static double percentile(List<Sample> list, double q) {
    long[] all = list.stream().flatMapToLong(s -> Arrays.stream(s.nanos())).sorted().toArray();
    if (all.length == 0) {
      return Double.NaN;
    }
    return all[(int) Math.min(all.length - 1, Math.floor(q * all.length))] / 1e6;
  }
}
