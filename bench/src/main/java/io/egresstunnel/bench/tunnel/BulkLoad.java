package io.egresstunnel.bench.tunnel;

import io.netty.handler.ssl.JdkSslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import javax.net.ssl.SSLContext;

/**
 * Bulk throughput through HTTP CONNECT proxies beside a direct connection, in one client process
 * that alternates between them, so that their ratios hold on a noisy machine. It also reads the CPU
 * time of the proxies' processes from {@code /proc}, for CPU-seconds per GB moved.
 *
 * <p>{@code serve --listen HOST:PORT} runs the target in its own process. A connection starts with
 * a direction byte and an 8-byte count. {@code F} (forward, client → target): the target reads that
 * many bytes, then answers one byte. {@code R} (reverse, target → client): it writes that many. A
 * measurement ends when the last byte has arrived, so nothing in flight is counted, and no
 * half-close is needed (TLS has none in the JDK).
 *
 * <p>{@code run --target HOST:PORT --via NAME=HOST:PORT ... [--via direct] [--tls NAME=CERT,KEY,CA]
 * [--pids NAME=PID[,PID]] [--streams 1] [--seconds 5] [--runs 3] [--reverse]} prints a Markdown
 * table: per path the median rate, its ratio to the first proxy named {@code squid} and to {@code
 * direct}, and the CPU-seconds per GB of its processes. A run starts with one unreported transfer
 * per path, which warms the JIT up and sizes the transfers to last about {@code --seconds}; with
 * {@code --runs 0} that first transfer (256 MiB in all) is what is reported: on fresh processes,
 * the cost of a cold JIT.
 */
public final class BulkLoad {
  private static final int BUFFER = 128 * 1024;
  private static final long WARM_UP_BYTES = 256L << 20;

  private BulkLoad() {}

  public static void main(String[] args) throws Exception {
    if (args.length == 0 || !(args[0].equals("serve") || args[0].equals("run"))) {
      LoadArgs.usage("BulkLoad", "the first argument is serve or run");
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
      LoadArgs.usage("BulkLoad", "serve takes --listen HOST:PORT");
    }
    InetSocketAddress at = LoadArgs.address(args[2]);
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

  /** One way to the target: through a proxy (plain or TLS) or direct. */
  record Via(String name, InetSocketAddress proxy, SSLContext tls, List<Long> pids) {}

  /** One measurement: bytes moved, seconds taken, CPU-seconds the path's processes spent. */
  record Sample(long bytes, double seconds, double[] cpuSeconds) {
    double gbitPerSecond() {
      return bytes * 8 / seconds / 1e9;
    }
  }

  private static void run(String[] args) throws Exception {
    InetSocketAddress target = null;
    Map<String, InetSocketAddress> vias = new LinkedHashMap<>();
    Map<String, SSLContext> tls = new LinkedHashMap<>();
    Map<String, List<Long>> pids = new LinkedHashMap<>();
    int streams = 1;
    int seconds = 5;
    int runs = 3;
    boolean reverse = false;
    for (int i = 1; i < args.length; i++) {
      String value = i + 1 < args.length ? args[i + 1] : "";
      switch (args[i]) {
        case "--target" -> target = LoadArgs.address(args[++i]);
        case "--via" -> {
          i++;
          if (value.equals("direct")) {
            vias.put("direct", null);
          } else {
            String[] kv = value.split("=", 2);
            vias.put(kv[0], LoadArgs.address(kv[1]));
          }
        }
        case "--tls" -> {
          i++;
          String[] kv = value.split("=", 2);
          String[] files = kv[1].split(",");
          tls.put(kv[0], clientContext(files[0], files[1], files[2]));
        }
        case "--pids" -> {
          i++;
          String[] kv = value.split("=", 2);
          pids.put(kv[0], Arrays.stream(kv[1].split(",")).map(Long::valueOf).toList());
        }
        case "--streams" -> streams = Integer.parseInt(args[++i]);
        case "--seconds" -> seconds = Integer.parseInt(args[++i]);
        case "--runs" -> runs = Integer.parseInt(args[++i]);
        case "--reverse" -> reverse = true;
        default -> LoadArgs.usage("BulkLoad", "unknown argument " + args[i]);
      }
    }
    if (target == null || vias.isEmpty()) {
      LoadArgs.usage("BulkLoad", "run needs --target and at least one --via");
    }
    List<Via> paths = new ArrayList<>();
    vias.forEach(
        (name, proxy) ->
            paths.add(new Via(name, proxy, tls.get(name), pids.getOrDefault(name, List.of()))));
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
    double squid = medianRate(samples.get("squid"));
    double direct = medianRate(samples.get("direct"));
    System.out.println(
        "| path | Gbit/s, median (each run) | × squid | × direct | CPU-s per GB (per process) |");
    System.out.println("|---|---|---|---|---|");
    samples.forEach(
        (name, list) -> {
          double rate = medianRate(list);
          double bytes = list.stream().mapToLong(Sample::bytes).sum();
          double gb = bytes / 1e9;
          double[] cpu = new double[list.get(0).cpuSeconds().length];
          for (Sample s : list) {
            for (int i = 0; i < cpu.length; i++) {
              cpu[i] += s.cpuSeconds()[i];
            }
          }
          double total = Arrays.stream(cpu).sum();
          String perProcess =
              cpu.length < 2
                  ? ""
                  : " ("
                      + String.join(
                          " + ", Arrays.stream(cpu).mapToObj(c -> fmt("%.2f", c / gb)).toList())
                      + ")";
          String runs =
              String.join(" ", list.stream().map(s -> fmt("%.2f", s.gbitPerSecond())).toList());
          System.out.printf(
              "| %s | **%.2f** (%s) | %s | %s | %s |%n",
              name,
              rate,
              runs,
              Double.isNaN(squid) ? "—" : fmt("%.2f×", rate / squid),
              Double.isNaN(direct) ? "—" : fmt("%.2f×", rate / direct),
              cpu.length == 0 ? "—" : fmt("%.2f", total / gb) + perProcess);
        });
  }

  private static String fmt(String format, double v) {
    return String.format(Locale.ROOT, format, v);
  }

  private static double medianRate(List<Sample> list) {
    if (list == null || list.isEmpty()) {
      return Double.NaN;
    }
    double[] r = list.stream().mapToDouble(Sample::gbitPerSecond).sorted().toArray();
    return r.length % 2 == 1 ? r[r.length / 2] : (r[r.length / 2 - 1] + r[r.length / 2]) / 2;
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
    double[] cpuBefore = LoadArgs.cpuSeconds(p.pids());
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
    double[] cpu = LoadArgs.cpuSeconds(p.pids());
    for (int i = 0; i < cpu.length; i++) {
      cpu[i] -= cpuBefore[i];
    }
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
    Socket s;
    if (p.proxy() == null) {
      s = new Socket(target.getAddress(), target.getPort());
    } else {
      Socket raw = new Socket(p.proxy().getAddress(), p.proxy().getPort());
      s =
          p.tls() == null
              ? raw
              : p.tls()
                  .getSocketFactory()
                  .createSocket(raw, p.proxy().getHostString(), p.proxy().getPort(), true);
      String t = target.getHostString() + ":" + target.getPort();
      OutputStream out = s.getOutputStream();
      out.write(
          ("CONNECT " + t + " HTTP/1.1\r\nHost: " + t + "\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII));
      out.flush();
      String head = readHead(s.getInputStream());
      if (!head.startsWith("HTTP/1.1 200") && !head.startsWith("HTTP/1.0 200")) {
        throw new IOException(p.name() + " answered " + head.lines().findFirst().orElse(""));
      }
    }
    s.setTcpNoDelay(true);
    DataOutputStream out = new DataOutputStream(s.getOutputStream());
    out.write(direction);
    out.writeLong(count);
    out.flush();
    return s;
  }

  private static String readHead(InputStream in) throws IOException {
    StringBuilder head = new StringBuilder();
    while (!head.toString().endsWith("\r\n\r\n")) {
      int b = in.read();
      if (b < 0) {
        throw new IOException("the proxy closed during CONNECT: " + head);
      }
      head.append((char) b);
    }
    return head.toString();
  }

  private static SSLContext clientContext(String cert, String key, String ca) throws IOException {
    return ((JdkSslContext)
            SslContextBuilder.forClient()
                .sslProvider(SslProvider.JDK)
                .keyManager(new File(cert), new File(key))
                .trustManager(new File(ca))
                .build())
        .context();
  }
}
