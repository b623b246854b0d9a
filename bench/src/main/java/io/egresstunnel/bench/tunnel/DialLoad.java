package io.egresstunnel.bench.tunnel;

import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

/**
 * New dials per second and one-stream bulk through a tunnel-server running in its own process, with
 * HTTP CONNECT and with Konnectivity's GRPC (a new gRPC connection per dial, as the apiserver does,
 * and one shared connection), from one client process, so the three compare in one run. The targets
 * (a one-byte echo and a sink) run in this process on {@code --target-host}; the server's agent
 * must route and allow that address on any port (pod mode with the address as its pod CIDR).
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar io.egresstunnel.bench.tunnel.DialLoad --proxy
 * 127.0.0.1:8090 --target-host 127.0.0.2 [--dials 2000] [--concurrency 50] [--mib 256]
 * [--connect-only] [--rounds 2]}
 */
public final class DialLoad {
  private DialLoad() {}

  public static void main(String[] args) throws Exception {
    String proxyArg = null;
    String targetHost = "127.0.0.2";
    int dials = 2000;
    int concurrency = 50;
    long mib = 256;
    java.util.EnumSet<Mode> modes = java.util.EnumSet.allOf(Mode.class);
    int rounds = 2;
    for (int i = 0; i < args.length; i += 2) {
      String value = i + 1 < args.length ? args[i + 1] : null;
      switch (args[i]) {
        case "--proxy" -> proxyArg = value;
        case "--target-host" -> targetHost = value;
        case "--dials" -> dials = Integer.parseInt(value);
        case "--concurrency" -> concurrency = Integer.parseInt(value);
        case "--mib" -> mib = Long.parseLong(value);
        case "--connect-only" -> {
          modes = java.util.EnumSet.of(Mode.CONNECT);
          i--; // a flag without a value
        }
        case "--rounds" -> rounds = Integer.parseInt(value);
        default -> {
          System.err.println("DialLoad: unknown argument " + args[i] + " (see the class comment)");
          System.exit(2);
        }
      }
    }
    if (proxyArg == null) {
      System.err.println("DialLoad: --proxy HOST:PORT is required");
      System.exit(2);
    }
    int colon = proxyArg.lastIndexOf(':');
    InetSocketAddress proxy =
        new InetSocketAddress(
            proxyArg.substring(0, colon), Integer.parseInt(proxyArg.substring(colon + 1)));
    try (TunnelBenchmark.Target echo =
            new TunnelBenchmark.Target(targetHost, TunnelBenchmark.Target::echo);
        TunnelBenchmark.Target sink =
            new TunnelBenchmark.Target(targetHost, TunnelBenchmark.Target::sink);
        GrpcClient shared = new GrpcClient(proxy)) {
      ExecutorService pool = Executors.newFixedThreadPool(concurrency);
      try {
        System.out.printf(
            "%-22s %12s %14s %14s%n", "protocol", "dials/s", "ms per dial", "bulk MB/s");
        for (int round = 0; round < rounds; round++) { // the first round warms the JIT up
          boolean report = round == rounds - 1;
          for (Mode mode : modes) {
            Opener opener = opener(mode, proxy, shared);
            double perSecond = dialRate(pool, opener, echo.address(), dials, concurrency);
            double bulk = bulk(opener, sink.address(), mib << 20);
            if (report) {
              System.out.printf(
                  "%-22s %12.0f %14.3f %14.1f%n",
                  mode.label, perSecond, concurrency * 1000.0 / perSecond, bulk / 1e6);
            }
          }
        }
      } finally {
        pool.shutdownNow();
      }
    }
  }

  private enum Mode {
    CONNECT("connect"),
    GRPC_PER_DIAL("grpc, conn per dial"),
    GRPC_SHARED("grpc, shared conn");

    final String label;

    Mode(String label) {
      this.label = label;
    }
  }

  /** Opens a byte stream to a target. */
  private interface Opener {
    Conn open(InetSocketAddress target) throws Exception;
  }

  private interface Conn extends AutoCloseable {
    InputStream in() throws IOException;

    OutputStream out() throws IOException;

    @Override
    void close() throws Exception;
  }

  /** A connection's two streams and what closes it. */
  private record Pipe(InputStream in, OutputStream out, AutoCloseable closer) implements Conn {
    @Override
    public void close() throws Exception {
      closer.close();
    }
  }

  private static Opener opener(Mode mode, InetSocketAddress proxy, GrpcClient shared) {
    return switch (mode) {
      case CONNECT -> target -> connect(proxy, target);
      case GRPC_SHARED -> target -> grpc(shared.dial(target), null);
      case GRPC_PER_DIAL ->
          target -> {
            GrpcClient own = new GrpcClient(proxy);
            return grpc(own.dial(target), own);
          };
    };
  }

  private static Conn grpc(GrpcClient.Conn c, GrpcClient owner) {
    return new Pipe(
        c.in(),
        c.out(),
        () -> {
          c.close();
          if (owner != null) {
            owner.close();
          }
        });
  }

  private static Conn connect(InetSocketAddress proxy, InetSocketAddress target)
      throws IOException {
    Socket s = LoadSupport.open(proxy, target);
    return new Pipe(s.getInputStream(), s.getOutputStream(), s);
  }

  /** Dials per second: open, one byte out, its echo back, close; {@code concurrency} at once. */
  private static double dialRate(
      ExecutorService pool, Opener opener, InetSocketAddress echo, int dials, int concurrency)
      throws Exception {
    long started = System.nanoTime();
    List<Future<?>> done = new ArrayList<>();
    for (int w = 0; w < concurrency; w++) {
      int share = dials / concurrency;
      done.add(
          pool.submit(
              () -> {
                for (int i = 0; i < share; i++) {
                  try (Conn c = opener.open(echo)) {
                    c.out().write(7);
                    c.out().flush();
                    if (c.in().read() != 7) {
                      throw new IOException("no echo");
                    }
                  }
                }
                return null;
              }));
    }
    for (Future<?> f : done) {
      f.get(10, TimeUnit.MINUTES);
    }
    return (dials / concurrency * concurrency) / ((System.nanoTime() - started) / 1e9);
  }

  /** Bytes per second of one stream's upload to the sink (length first, then a receipt). */
  private static double bulk(Opener opener, InetSocketAddress sink, long bytes) throws Exception {
    long started = System.nanoTime();
    try (Conn c = opener.open(sink)) {
      OutputStream out = c.out();
      new DataOutputStream(out).writeLong(bytes);
      byte[] buf = new byte[128 * 1024];
      for (long left = bytes; left > 0; left -= buf.length) {
        out.write(buf, 0, (int) Math.min(buf.length, left));
      }
      out.flush();
      if (c.in().read() != 1) {
        throw new IOException("no receipt from the sink");
      }
    }
    return bytes / ((System.nanoTime() - started) / 1e9);
  }
}
