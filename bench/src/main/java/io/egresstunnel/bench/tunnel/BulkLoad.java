package io.egresstunnel.bench.tunnel;

import io.egresstunnel.bench.tunnel.LoadSupport.Via;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * Bulk throughput through HTTP CONNECT proxies beside a direct connection, in one client process
 * that alternates between them, so that their ratios hold on a noisy machine. It also reads the CPU
 * time of the proxies' processes from {@code /proc}, for CPU-seconds per GB moved.
 *
 * <p>{@code serve --listen HOST:PORT} runs the target in its own process. A connection starts with
 * a direction byte and an 8-byte count. {@code F} (forward, client → target): the target reads that
 * many bytes, then answers one byte. {@code R} (reverse, target → client): it writes that many. A
 * measurement ends when the last byte has arrived, so nothing in flight is counted, and no
 * half-close is needed.
 *
 * <p>{@code run --target HOST:PORT --via NAME=HOST:PORT ... [--via direct] [--pids NAME=PID[,PID]]
 * [--streams 1] [--seconds 5] [--runs 3] [--reverse]} prints a Markdown table: per path the median
 * rate, its ratio to the first proxy named {@code squid} and to {@code direct}, and the CPU-seconds
 * per GB of its processes. A run starts with one unreported transfer per path, which warms the JIT
 * up and sizes the transfers to last about {@code --seconds}; with {@code --runs 0} that first
 * transfer (256 MiB in all) is what is reported: on fresh processes, the cost of a cold JIT.
 */
public final class BulkLoad {
  private static final int BUFFER = 128 * 1024;
  private static final long WARM_UP_BYTES = 256L << 20;

  private BulkLoad() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 0 || !(args[0].equals("serve") || args[0].equals("run"))) {
      LoadSupport.usage("BulkLoad", "the first argument is serve or run");
    }
    if (args[0].equals("serve")) {
      serve(args);
    } else {
      run(args);
    }
  }

  // ---- the target ----

  private static void serve(String[] args) throws IOException {
    if (args.length != 3 || !args[1].equals("--listen")) {
      LoadSupport.usage("BulkLoad", "serve takes --listen HOST:PORT");
    }
    InetSocketAddress at = LoadSupport.address(args[2]);
    ExecutorService threads = Executors.newCachedThreadPool();
    try (ServerSocket server = new ServerSocket()) {
      server.bind(
          new InetSocketAddress(InetAddress.getByName(at.getHostString()), at.getPort()), 1024);
      while (true) {
        Socket s = server.accept();
        threads.execute(
            () -> {
              try (s) {
                DataInputStream in = new DataInputStream(s.getInputStream());
                int direction = in.read();
                long count = in.readLong();
                if (direction == 'F') {
                  sink(s, count);
                } else if (direction == 'R') {
                  source(s, count);
                }
              } catch (IOException ignored) {
                // the client went away: a reverse run ends that way
              }
            });
      }
    }
  }

  private static void sink(Socket s, long count) throws IOException {
    InputStream in = s.getInputStream();
    byte[] buf = new byte[BUFFER];
    for (long left = count; left > 0; ) {
      int n = in.read(buf, 0, (int) Math.min(buf.length, left));
      if (n < 0) {
        return;
      }
      left -= n;
    }
    s.getOutputStream().write(1);
    s.getOutputStream().flush();
  }

  private static void source(Socket s, long count) throws IOException {
    OutputStream out = s.getOutputStream();
    byte[] buf = new byte[BUFFER];
    Arrays.fill(buf, (byte) 0x5a);
    for (long left = count; left > 0; left -= buf.length) {
      out.write(buf, 0, (int) Math.min(buf.length, left));
    }
    out.flush();
    s.getInputStream().read(); // until the client closes
  }

  // ---- the client ----

  /** One measurement: bytes moved, seconds taken, CPU-seconds the path's processes spent. */
  record Sample(long bytes, double seconds, double[] cpuSeconds) {
    double gbitPerSecond() {
      return bytes * 8 / seconds / 1e9;
    }
  }

  private static void run(String[] args) throws Exception {
    InetSocketAddress target = null;
    LoadSupport.Vias vias = new LoadSupport.Vias();
    int streams = 1;
    int seconds = 5;
    int runs = 3;
    boolean reverse = false;
    for (int i = 1; i < args.length; i++) {
      switch (args[i]) {
        case "--target" -> target = LoadSupport.address(args[++i]);
        case "--via", "--pids" -> vias.take(args[i], args[++i]);
        case "--streams" -> streams = Integer.parseInt(args[++i]);
        case "--seconds" -> seconds = Integer.parseInt(args[++i]);
        case "--runs" -> runs = Integer.parseInt(args[++i]);
        case "--reverse" -> reverse = true;
        default -> LoadSupport.usage("BulkLoad", "unknown argument " + args[i]);
      }
    }
    List<Via> paths = vias.list();
    if (target == null || paths.isEmpty()) {
      LoadSupport.usage("BulkLoad", "run needs --target and at least one --via");
    }
    ExecutorService pool = Executors.newCachedThreadPool();
    Map<String, List<Sample>> samples = new LinkedHashMap<>();
    Map<String, Long> perStream = new LinkedHashMap<>();
    for (Via p : paths) { // warms the JIT up, and sizes the transfers to last about --seconds
      Sample warm = measure(pool, p, target, streams, WARM_UP_BYTES / streams, reverse);
      if (runs == 0) { // report the first transfer itself
        samples.computeIfAbsent(p.name(), k -> new ArrayList<>()).add(warm);
      }
      long bytes = (long) (warm.bytes() / warm.seconds() * seconds / streams);
      perStream.put(p.name(), Math.max(bytes, WARM_UP_BYTES / streams));
    }
    for (int round = 0; round < runs; round++) {
      for (Via p : paths) {
        Sample s = measure(pool, p, target, streams, perStream.get(p.name()), reverse);
        samples.computeIfAbsent(p.name(), k -> new ArrayList<>()).add(s);
      }
    }
    pool.shutdownNow();
    print(samples);
  }

  private static void print(Map<String, List<Sample>> samples) {
    double squid = medianRate(samples.getOrDefault("squid", List.of()));
    double direct = medianRate(samples.getOrDefault("direct", List.of()));
    System.out.println(
        "| path | Gbit/s, median (each run) | × squid | × direct | CPU-s per GB (per process) |");
    System.out.println("|---|---|---|---|---|");
    samples.forEach(
        (name, list) -> {
          double rate = medianRate(list);
          double gb = list.stream().mapToLong(Sample::bytes).sum() / 1e9;
          double[] cpu = LoadSupport.sum(list.stream().map(Sample::cpuSeconds).toList());
          String runs =
              String.join(
                  " ", list.stream().map(s -> LoadSupport.fmt("%.2f", s.gbitPerSecond())).toList());
          System.out.printf(
              "| %s | **%.2f** (%s) | %s | %s | %s |%n",
              name,
              rate,
              runs,
              LoadSupport.ratio(rate, squid),
              LoadSupport.ratio(rate, direct),
              LoadSupport.cpuCell(cpu, gb, "%.2f"));
        });
  }

  private static double medianRate(List<Sample> list) {
    return LoadSupport.median(list.stream().mapToDouble(Sample::gbitPerSecond));
  }

  private static Sample measure(
      ExecutorService pool,
      Via p,
      InetSocketAddress target,
      int streams,
      long perStream,
      boolean reverse)
      throws Exception {
    List<Socket> sockets = new ArrayList<>();
    for (int i = 0; i < streams; i++) {
      sockets.add(open(p, target, reverse ? 'R' : 'F', perStream));
    }
    double[] cpuBefore = LoadSupport.cpuSeconds(p.pids());
    long start = System.nanoTime();
    List<Future<Long>> moved = new ArrayList<>();
    for (Socket s : sockets) {
      moved.add(pool.submit(() -> reverse ? download(s, perStream) : upload(s, perStream)));
    }
    long bytes = 0;
    for (Future<Long> f : moved) {
      bytes += f.get();
    }
    double elapsed = (System.nanoTime() - start) / 1e9;
    double[] cpu = LoadSupport.cpuSecondsSince(cpuBefore, p.pids());
    for (Socket s : sockets) {
      s.close();
    }
    return new Sample(bytes, elapsed, cpu);
  }

  /** Writes {@code count} bytes and waits for the target's receipt. */
  private static long upload(Socket s, long count) throws IOException {
    OutputStream out = s.getOutputStream();
    byte[] buf = new byte[BUFFER];
    Arrays.fill(buf, (byte) 0xa5);
    for (long left = count; left > 0; left -= buf.length) {
      out.write(buf, 0, (int) Math.min(buf.length, left));
    }
    out.flush();
    if (s.getInputStream().read() != 1) {
      throw new IOException("no receipt from the target");
    }
    return count;
  }

  /** Reads {@code count} bytes. */
  private static long download(Socket s, long count) throws IOException {
    InputStream in = s.getInputStream();
    byte[] buf = new byte[BUFFER];
    for (long left = count; left > 0; ) {
      int n = in.read(buf, 0, (int) Math.min(buf.length, left));
      if (n < 0) {
        throw new IOException("the target closed early");
      }
      left -= n;
    }
    return count;
  }

  private static Socket open(Via p, InetSocketAddress target, char direction, long count)
      throws IOException {
    Socket s = LoadSupport.open(p.proxy(), target);
    DataOutputStream out = new DataOutputStream(s.getOutputStream());
    out.write(direction);
    out.writeLong(count);
    out.flush();
    return s;
  }
}
