package io.egresstunnel.bench.tunnel;

import io.egresstunnel.proto.AgentHello;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.proto.Dial;
import io.egresstunnel.proto.DialStatus;
import io.egresstunnel.proto.Limits;
import io.egresstunnel.proto.net.TargetDialer;
import io.egresstunnel.proto.net.Transport;
import io.egresstunnel.proto.session.SessionPipeline;
import io.egresstunnel.proto.session.TunnelSession;
import io.egresstunnel.proto.session.TunnelStream;
import io.netty.bootstrap.Bootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolConfig;
import io.netty.handler.codec.http.websocketx.WebSocketClientProtocolHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * Many lightweight agents in one JVM, for scale and soak runs against one tunnel-server: each is a
 * real websocket with the real protocol (hello, pings, dials, data) on a shared event-loop group,
 * with no thread of its own. Agent {@code i} speaks for node {@code sim-i} with pod CIDR {@code
 * 127.21.X.Y/32}; whatever it is asked to dial, it connects to this process's echo target, so a
 * CONNECT to {@code 127.21.X.Y:PORT} through the server (in pod mode) is an echo through agent
 * {@code i}.
 *
 * <p>It connects {@code --agents} agents at once, holds them for {@code --hold}, meanwhile sends
 * {@code --dials} checksummed echoes through agents picked at random, and reports how many sessions
 * were established, how many dropped, how many echoes came back intact, and the bytes lost (which
 * must be 0).
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar io.egresstunnel.bench.tunnel.ManyAgents
 * --server ws://127.0.0.1:8091 --proxy 127.0.0.1:8090 --agents 1000 --hold 120s --dials 2000}
 */
public final class ManyAgents implements AutoCloseable {
  private final URI server;
  private final int count;
  private final EventLoopGroup group;
  private final TargetDialer dialer = new TargetDialer(1);
  private final InetSocketAddress echo;
  private final List<Channel> channels = new CopyOnWriteArrayList<>();
  final AtomicInteger established = new AtomicInteger();
  final AtomicInteger closed = new AtomicInteger();
  final AtomicInteger dialsAnswered = new AtomicInteger();

  ManyAgents(URI server, int count, InetSocketAddress echo, int threads) {
    this.server = server;
    this.count = count;
    this.echo = echo;
    this.group = Transport.newGroup(threads, new DefaultThreadFactory("sim-agents", true));
  }

  /** The pod CIDR address of agent {@code i}: 127.21.X.Y. */
  static String podAddress(int i) {
    return "127.21." + (i / 250) + "." + (i % 250 + 1);
  }

  /** Connects every agent at once; returns at once. */
  void start() {
    for (int i = 0; i < count; i++) {
      connect(i);
    }
  }

  private void connect(int i) {
    String node = "sim-" + i;
    AgentHello hello =
        new AgentHello(
            Limits.MIN_VERSION,
            Limits.MAX_VERSION,
            0,
            Limits.DEFAULT_INITIAL_WINDOW,
            Limits.DEFAULT_MAX_FRAME_PAYLOAD,
            10250,
            node,
            List.of(Cidr.parseAddress("127.20." + (i / 250) + "." + (i % 250 + 1))),
            List.of(Cidr.parse(podAddress(i) + "/32")));
    URI uri = server.resolve(SessionPipeline.TUNNEL_PATH);
    new Bootstrap()
        .group(group)
        .channel(Transport.socketChannel())
        .option(ChannelOption.TCP_NODELAY, true)
        .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 30_000)
        .handler(
            new ChannelInitializer<>() {
              @Override
              protected void initChannel(Channel ch) {
                ch.pipeline()
                    .addLast(new HttpClientCodec())
                    .addLast(new HttpObjectAggregator(8192))
                    .addLast(
                        new WebSocketClientProtocolHandler(
                            WebSocketClientProtocolConfig.newBuilder()
                                .webSocketUri(uri)
                                .handshakeTimeoutMillis(30_000)
                                .maxFramePayloadLength(
                                    Limits.HEADER_SIZE + Limits.DEFAULT_MAX_FRAME_PAYLOAD)
                                .customHeaders(
                                    new DefaultHttpHeaders().set(SessionPipeline.NODE_HEADER, node))
                                .allowMaskMismatch(true)
                                .build()))
                    .addLast(new Upgraded(hello));
              }
            })
        .connect(uri.getHost(), uri.getPort())
        .addListener(
            f -> {
              if (f.isSuccess()) {
                channels.add(((io.netty.channel.ChannelFuture) f).channel());
              } else {
                closed.incrementAndGet();
              }
            });
  }

  /** Installs the session once the upgrade is done, as tunnel-agent does. */
  private final class Upgraded extends ChannelInboundHandlerAdapter {
    private final AgentHello hello;

    Upgraded(AgentHello hello) {
      this.hello = hello;
    }

    @Override
    public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
      if (evt == WebSocketClientProtocolHandler.ClientHandshakeStateEvent.HANDSHAKE_COMPLETE) {
        TunnelSession.Config config =
            new TunnelSession.Config(
                Limits.DEFAULT_INITIAL_WINDOW,
                Limits.DEFAULT_MAX_FRAME_PAYLOAD,
                10_000,
                10_000,
                30_000);
        SessionPipeline.install(
            ctx.pipeline(),
            Duration.ofSeconds(15),
            Duration.ofSeconds(45),
            TunnelSession.agent(config, hello, new Listener()));
        ctx.pipeline().remove(this);
        return;
      }
      ctx.fireUserEventTriggered(evt);
    }
  }

  private final class Listener implements TunnelSession.Listener {
    @Override
    public void onEstablished(TunnelSession session) {
      established.incrementAndGet();
    }

    @Override
    public void onDial(TunnelStream stream, Dial dial) {
      dialer
          .connect(stream.session().eventLoop(), echo.getAddress(), echo.getPort(), 10_000)
          .addListener(
              f -> {
                dialsAnswered.incrementAndGet();
                if (f.isSuccess()) {
                  stream.dialSucceeded((Channel) f.getNow());
                } else {
                  stream.dialFailed(DialStatus.REFUSED, f.cause().getMessage());
                }
              });
    }

    @Override
    public void onClosed(TunnelSession session) {
      closed.incrementAndGet();
    }
  }

  @Override
  public void close() {
    for (Channel c : channels) {
      c.close();
    }
    group.shutdownGracefully(0, 1, java.util.concurrent.TimeUnit.SECONDS).syncUninterruptibly();
    dialer.close();
  }

  /** One echo through agent {@code i}: {@code bytes} random bytes out, the same back. */
  static long echoThrough(InetSocketAddress proxy, int i, int port, int bytes, long seed)
      throws Exception {
    try (Socket s = new Socket()) {
      s.connect(proxy, 10_000);
      s.setSoTimeout(30_000);
      OutputStream out = s.getOutputStream();
      out.write(
          ("CONNECT " + podAddress(i) + ":" + port + " HTTP/1.1\r\nHost: x\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      InputStream in = s.getInputStream();
      byte[] head = new byte[39]; // "HTTP/1.1 200 Connection established\r\n\r\n"
      int n = in.readNBytes(head, 0, head.length);
      String line = new String(head, 0, n, StandardCharsets.US_ASCII);
      if (!line.startsWith("HTTP/1.1 200")) {
        throw new IllegalStateException("agent " + i + ": " + line.strip());
      }
      byte[] data = new byte[bytes];
      new SplittableRandom(seed).nextBytes(data);
      Thread writer =
          daemon(
              () -> {
                try {
                  out.write(data);
                  s.shutdownOutput();
                } catch (Exception e) {
                  // the reader sees the loss
                }
              });
      byte[] back = in.readAllBytes();
      writer.join();
      MessageDigest sent = MessageDigest.getInstance("SHA-256");
      MessageDigest got = MessageDigest.getInstance("SHA-256");
      if (!Arrays.equals(sent.digest(data), got.digest(back))) {
        return Math.max(1, bytes - back.length);
      }
      return 0;
    }
  }

  private static Thread daemon(Runnable r) {
    Thread t = new Thread(r);
    t.setDaemon(true);
    t.start();
    return t;
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> a = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      a.put(args[i], args[i + 1]);
    }
    if (!a.containsKey("--server") || !a.containsKey("--proxy")) {
      System.err.println("ManyAgents: --server ws://HOST:PORT and --proxy HOST:PORT are required");
      System.exit(2);
    }
    int agents = Integer.parseInt(a.getOrDefault("--agents", "1000"));
    Duration hold =
        io.egresstunnel.proto.config.Units.parsePositiveDuration(
            "--hold", a.getOrDefault("--hold", "120s"));
    int dials = Integer.parseInt(a.getOrDefault("--dials", "2000"));
    int bytes = Integer.parseInt(a.getOrDefault("--bytes", "65536"));
    String[] p = a.get("--proxy").split(":");
    InetSocketAddress proxy = new InetSocketAddress(p[0], Integer.parseInt(p[1]));
    Result r = run(URI.create(a.get("--server")), proxy, agents, hold, dials, bytes);
    System.out.println(r);
    System.exit(r.ok() ? 0 : 1);
  }

  /** What a run saw. */
  record Result(
      int agents,
      int established,
      double connectSeconds,
      int droppedWhileHeld,
      int echoes,
      int echoesIntact,
      long bytesLost,
      List<String> errors) {
    boolean ok() {
      return established == agents
          && droppedWhileHeld == 0
          && echoesIntact == echoes
          && bytesLost == 0;
    }

    @Override
    public String toString() {
      return String.format(
          "%d agents: %d established in %.1f s, %d dropped while held; %d echoes, %d intact,"
              + " %d bytes lost%s",
          agents,
          established,
          connectSeconds,
          droppedWhileHeld,
          echoes,
          echoesIntact,
          bytesLost,
          errors.isEmpty()
              ? ""
              : "; first errors: " + errors.subList(0, Math.min(3, errors.size())));
    }
  }

  /** Connects the agents, holds them while echoes run, and closes them. */
  static Result run(
      URI server, InetSocketAddress proxy, int agents, Duration hold, int dials, int bytes)
      throws Exception {
    try (java.net.ServerSocket echo = new java.net.ServerSocket()) {
      echo.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 4096);
      Thread acceptor =
          daemon(
              () -> {
                try {
                  while (true) {
                    Socket s = echo.accept();
                    daemon(
                        () -> {
                          try (s) {
                            s.getInputStream().transferTo(s.getOutputStream());
                          } catch (Exception e) {
                            // a cut stream: the client counts it
                          }
                        });
                  }
                } catch (Exception closed) {
                  // done
                }
              });
      try (ManyAgents sim =
          new ManyAgents(server, agents, (InetSocketAddress) echo.getLocalSocketAddress(), 2)) {
        long start = System.nanoTime();
        sim.start();
        long deadline = start + Duration.ofSeconds(120).toNanos();
        while (sim.established.get() + sim.closed.get() < agents && System.nanoTime() < deadline) {
          Thread.sleep(50);
        }
        double connectSeconds = (System.nanoTime() - start) / 1e9;
        int established = sim.established.get();
        int closedBefore = sim.closed.get();
        long holdEnd = System.nanoTime() + hold.toNanos();
        List<String> errors = new CopyOnWriteArrayList<>();
        AtomicInteger intact = new AtomicInteger();
        java.util.concurrent.atomic.AtomicLong lost = new java.util.concurrent.atomic.AtomicLong();
        ExecutorService pool = Executors.newFixedThreadPool(16);
        List<Future<?>> done = new ArrayList<>();
        SplittableRandom pick = new SplittableRandom(7);
        for (int d = 0; d < dials; d++) {
          int agent = pick.nextInt(agents);
          long seed = d;
          done.add(
              pool.submit(
                  () -> {
                    try {
                      long l = echoThrough(proxy, agent, 7, bytes, seed);
                      lost.addAndGet(l);
                      if (l == 0) {
                        intact.incrementAndGet();
                      }
                    } catch (Exception e) {
                      errors.add(e.getMessage());
                      lost.addAndGet(bytes);
                    }
                    return null;
                  }));
        }
        for (Future<?> f : done) {
          f.get();
        }
        pool.shutdown();
        while (System.nanoTime() < holdEnd) {
          Thread.sleep(200);
        }
        int dropped = sim.closed.get() - closedBefore;
        echo.close();
        acceptor.join(1000);
        return new Result(
            agents, established, connectSeconds, dropped, dials, intact.get(), lost.get(), errors);
      }
    }
  }
}
