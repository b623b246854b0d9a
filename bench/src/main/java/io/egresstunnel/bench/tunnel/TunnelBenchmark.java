package io.egresstunnel.bench.tunnel;

import io.egresstunnel.agent.AgentConfig;
import io.egresstunnel.agent.TunnelAgent;
import io.egresstunnel.proto.Cidr;
import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.ServerConfig;
import io.egresstunnel.server.TunnelServer;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * Tunnel throughput and new-stream latency, beside a direct loopback connection and squid as a
 * CONNECT proxy, all measured in the same run so that their ratios hold on a noisy machine.
 *
 * <p>One JVM holds tunnel-server, a tunnel-agent for node 127.0.0.2 and the targets on 127.0.0.2;
 * squid (Debian package {@code squid}) runs as a child process. {@code path}: {@code direct} (plain
 * TCP to the target), {@code tunnel} (CONNECT → server → websocket → agent → target), {@code squid}
 * (CONNECT → squid → target), {@code grpc} (Konnectivity's GRPC → server → websocket → agent →
 * target; one call per stream, all on one gRPC connection: {@link GrpcClient}).
 *
 * <p>Run: {@code java -jar bench/target/benchmarks.jar TunnelBenchmark}
 */
@State(Scope.Benchmark)
@Fork(
    value = 1,
    jvmArgsAppend = {"-Dio.netty.leakDetection.level=disabled", "-Xms1g", "-Xmx1g"})
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 3)
public class TunnelBenchmark {
  /** Bytes moved per throughput operation, split over the streams. */
  static final long BYTES_PER_OP = 256L << 20;

  @Param({"direct", "tunnel", "grpc", "squid"})
  public String path;

  private TunnelServer server;
  private TunnelAgent agent;
  private Process squid;
  private Path squidDir;
  private Target sink;
  private Target echo;
  private InetSocketAddress proxy;
  private ExecutorService pool;
  private GrpcClient grpc;

  @Setup(Level.Trial)
  public void setUp() throws Exception {
    sink = new Target("127.0.0.2", Target::sink);
    echo = new Target("127.0.0.2", Target::echo);
    pool = Executors.newCachedThreadPool();
    switch (path) {
      case "tunnel", "grpc" -> {
        // The agent may dial both targets: the sink is the kubelet port, the echo is --allow'ed.
        server =
            new TunnelServer(
                    ServerConfig.plain(
                        EgressMode.POD,
                        new InetSocketAddress("127.0.0.1", 0),
                        new InetSocketAddress("127.0.0.1", 0)))
                .start();
        agent =
            new TunnelAgent(
                    AgentConfig.simple(
                            java.net.URI.create(
                                "ws://127.0.0.1:" + server.agentAddress().getPort()),
                            "node-a",
                            List.of(InetAddress.getByName("127.0.0.2")),
                            EgressMode.POD)
                        .withPodCidrs(List.of(Cidr.parse("127.0.0.2/32"))))
                .start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (server.registry().session("node-a") == null) {
          if (System.nanoTime() > deadline) {
            throw new IllegalStateException("the agent did not connect");
          }
          Thread.sleep(20);
        }
        proxy = server.connectAddress();
        if (path.equals("grpc")) {
          grpc = new GrpcClient(proxy);
        }
      }
      case "squid" -> proxy = startSquid();
      default -> proxy = null;
    }
  }

  @TearDown(Level.Trial)
  public void tearDown() throws Exception {
    if (grpc != null) {
      grpc.close();
    }
    if (agent != null) {
      agent.close();
    }
    if (server != null) {
      server.close();
    }
    if (squid != null) {
      squid.destroy();
      squid.waitFor(10, TimeUnit.SECONDS);
    }
    sink.close();
    echo.close();
    pool.shutdownNow();
  }

  /** Moves {@link #BYTES_PER_OP} bytes to the sink over one stream. */
  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  public long bulk1Stream() throws Exception {
    return upload(1);
  }

  /** Moves {@link #BYTES_PER_OP} bytes to the sink over 64 concurrent streams. */
  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MILLISECONDS)
  public long bulk64Streams() throws Exception {
    return upload(64);
  }

  /** A new stream: connect (CONNECT until 200 for proxies), one byte out, its echo back. */
  @Benchmark
  @BenchmarkMode(Mode.AverageTime)
  @OutputTimeUnit(TimeUnit.MICROSECONDS)
  public int newStream() throws Exception {
    try (Stream s = stream(echo)) {
      s.out().write(7);
      return s.in().read();
    }
  }

  private long upload(int streams) throws Exception {
    long each = BYTES_PER_OP / streams;
    List<Future<Long>> done = new ArrayList<>(streams);
    for (int i = 0; i < streams; i++) {
      done.add(
          pool.submit(
              () -> {
                try (Stream s = stream(sink)) {
                  OutputStream out = s.out();
                  // Length first: squid cannot half-close, so EOF cannot mark the end.
                  new java.io.DataOutputStream(out).writeLong(each);
                  byte[] buf = new byte[128 * 1024];
                  for (long left = each; left > 0; left -= buf.length) {
                    out.write(buf, 0, (int) Math.min(buf.length, left));
                  }
                  out.flush();
                  long received = s.in().read(); // the sink's receipt
                  if (received != 1) {
                    throw new IOException("no receipt from the sink");
                  }
                  return each;
                }
              }));
    }
    long total = 0;
    for (Future<Long> f : done) {
      total += f.get(120, TimeUnit.SECONDS);
    }
    return total;
  }

  /** A byte stream to a target: a socket, or a GRPC call. */
  private interface Stream extends AutoCloseable {
    InputStream in() throws IOException;

    OutputStream out() throws IOException;

    @Override
    void close() throws IOException;
  }

  /** A stream to {@code target} by {@link #path}. */
  private Stream stream(Target target) throws Exception {
    if (grpc != null) {
      GrpcClient.Conn c = grpc.dial(target.address());
      return new Stream() {
        private final InputStream in = c.in();
        private final OutputStream out = c.out();

        @Override
        public InputStream in() {
          return in;
        }

        @Override
        public OutputStream out() {
          return out;
        }

        @Override
        public void close() {
          c.close();
        }
      };
    }
    Socket s = open(target);
    return new Stream() {
      @Override
      public InputStream in() throws IOException {
        return s.getInputStream();
      }

      @Override
      public OutputStream out() throws IOException {
        return s.getOutputStream();
      }

      @Override
      public void close() throws IOException {
        s.close();
      }
    };
  }

  /** A socket to {@code target}: direct, or through the proxy after a 200 to the CONNECT. */
  private Socket open(Target target) throws IOException {
    return LoadSupport.open(proxy, target.address());
  }

  private InetSocketAddress startSquid() throws Exception {
    int port;
    try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
      port = free.getLocalPort();
    }
    squidDir = Files.createTempDirectory("bench-squid");
    Path conf = squidDir.resolve("squid.conf");
    Files.writeString(
        conf,
        String.join(
            "\n",
            "http_port 127.0.0.1:" + port,
            "acl lo_src src 127.0.0.1/32",
            "http_access allow lo_src",
            "http_access deny all",
            "cache deny all",
            "cache_mem 8 MB",
            "access_log none",
            "cache_store_log none",
            "cache_log " + squidDir.resolve("cache.log"),
            "pid_filename " + squidDir.resolve("squid.pid"),
            "coredump_dir " + squidDir,
            "workers 1",
            "shutdown_lifetime 1 seconds",
            ""));
    squid =
        new ProcessBuilder("squid", "-N", "-f", conf.toString())
            .redirectErrorStream(true)
            .redirectOutput(squidDir.resolve("out.log").toFile())
            .start();
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
    while (true) {
      try (Socket probe = new Socket()) {
        probe.connect(new InetSocketAddress("127.0.0.1", port), 200);
        return new InetSocketAddress("127.0.0.1", port);
      } catch (IOException e) {
        if (System.nanoTime() > deadline || !squid.isAlive()) {
          throw new IllegalStateException(
              "squid did not start (apt-get install squid); see " + squidDir, e);
        }
        Thread.sleep(50);
      }
    }
  }

  /** A blocking loopback target, one thread per connection. */
  static final class Target implements AutoCloseable {
    interface Behaviour {
      void serve(Socket s) throws IOException;
    }

    private final ServerSocket server;
    private final ExecutorService threads = Executors.newCachedThreadPool();

    Target(String host, Behaviour behaviour) throws IOException {
      server = new ServerSocket();
      server.bind(new InetSocketAddress(InetAddress.getByName(host), 0), 1024);
      threads.execute(
          () -> {
            while (!server.isClosed()) {
              try {
                Socket s = server.accept();
                s.setTcpNoDelay(true);
                threads.execute(
                    () -> {
                      try (s) {
                        behaviour.serve(s);
                      } catch (IOException ignored) {
                        // the client went away
                      }
                    });
              } catch (IOException e) {
                return;
              }
            }
          });
    }

    InetSocketAddress address() {
      return (InetSocketAddress) server.getLocalSocketAddress();
    }

    /** Reads an 8-byte length and that many bytes, then sends a one-byte receipt. */
    static void sink(Socket s) throws IOException {
      InputStream in = s.getInputStream();
      long left = new java.io.DataInputStream(in).readLong();
      byte[] buf = new byte[256 * 1024];
      while (left > 0) {
        int n = in.read(buf, 0, (int) Math.min(buf.length, left));
        if (n < 0) {
          throw new IOException("EOF with " + left + " bytes to go");
        }
        left -= n;
      }
      s.getOutputStream().write(1);
    }

    /** Echoes single bytes until EOF. */
    static void echo(Socket s) throws IOException {
      InputStream in = s.getInputStream();
      OutputStream out = s.getOutputStream();
      for (int b; (b = in.read()) >= 0; ) {
        out.write(b);
        out.flush();
      }
    }

    @Override
    public void close() throws IOException {
      server.close();
      threads.shutdownNow();
    }
  }
}
