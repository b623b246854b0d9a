package io.egresstunnel.bench.tunnel;

import java.io.IOException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A burst of CONNECTs at once to one agent, as the apiserver sends them (hundreds at a time when it
 * lists logs or proxies to many pods), against a tunnel-server and tunnel-agent running as their
 * own processes with their defaults:
 *
 * <ol>
 *   <li><b>answered</b>: every dial reaches a target that accepts; prints how many got 200 and how
 *       many 503 (a pending-dial or stream limit), and how long the burst took;
 *   <li><b>pending</b>: every dial goes to a target that never accepts (its accept queue is full),
 *       so all of them are pending at once; with {@code --server-pid} and {@code --agent-pid} it
 *       forces a GC in each process ({@code jcmd PID GC.run}) before and during the burst, and
 *       prints the heap and RSS they hold per pending dial.
 * </ol>
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar io.egresstunnel.bench.tunnel.BurstLoad
 * --proxy 127.0.0.1:8090 --target-host 127.0.0.2 --dials 5000 --server-admin 127.0.0.1:8092
 * --agent-admin 127.0.0.1:8093 --server-pid PID --agent-pid PID}
 */
public final class BurstLoad {
  private BurstLoad() {}

  public static void main(String[] args) throws Exception {
    Map<String, String> a = new TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      a.put(args[i], args[i + 1]);
    }
    if ((!a.containsKey("--proxy") && !a.containsKey("--serve-echo")) || args.length % 2 != 0) {
      System.err.println("BurstLoad: --proxy HOST:PORT is required (see the class comment)");
      System.exit(2);
    }
    if (a.containsKey("--serve-echo")) {
      // Only the echo target, in a process of its own (its sockets do not count against the
      // client's open files): --serve-echo HOST:PORT
      InetSocketAddress at = hostPort(a.get("--serve-echo"));
      try (EchoServer echo = new EchoServer(at.getHostString(), at.getPort(), 65535)) {
        System.out.println("echo target on " + at.getHostString() + ":" + echo.port());
        Thread.sleep(Long.MAX_VALUE);
      }
      return;
    }
    InetSocketAddress proxy = hostPort(a.get("--proxy"));
    String targetHost = a.getOrDefault("--target-host", "127.0.0.2");
    int dials = Integer.parseInt(a.getOrDefault("--dials", "5000"));

    // 1. answered, then a checksummed echo through every stream, all open at once
    try (EchoServer target =
        a.containsKey("--echo-port") ? null : new EchoServer(targetHost, 0, dials * 2)) {
      int port = target != null ? target.port() : Integer.parseInt(a.get("--echo-port"));
      Burst answered = burst(proxy, port, targetHost, dials, true);
      System.out.printf(
          "answered burst: %d dials at once -> %s in %.0f ms%n",
          dials, answered.statuses, answered.millis);
      int intact = echoAll(answered.open);
      System.out.printf(
          "then 4 KiB echoed through each of the %d streams open at once: %d intact%n",
          answered.open.size(), intact);
      answered.close();
    }

    // 2. pending
    try (ServerSocket hole = new ServerSocket()) {
      hole.bind(new InetSocketAddress(targetHost, 0), 1);
      // Fill the accept queue: from now on the kernel drops SYNs and every dial stays pending.
      List<Socket> fillers = new ArrayList<>();
      for (int i = 0; i < 4; i++) {
        Socket s = new Socket();
        try {
          s.connect(hole.getLocalSocketAddress(), 200);
        } catch (IOException queueFull) {
          // expected once the queue is full
        }
        fillers.add(s);
      }
      Heap before = heap(a);
      Burst pending = burst(proxy, hole.getLocalPort(), targetHost, dials, false);
      String pendingMetric =
          a.containsKey("--server-admin")
              ? waitPending(a.get("--server-admin"), dials)
              : "(no --server-admin)";
      Heap during = heap(a);
      System.out.printf(
          "pending burst: %d dials written in %.0f ms; server pending dials: %s%n",
          dials, pending.millis, pendingMetric);
      double held = parseOr(pendingMetric, dials);
      if (before != null && during != null) {
        System.out.printf(
            "per pending dial: server heap %.0f B, RSS %.0f B; agent heap %.0f B, RSS %.0f B%n",
            (during.serverHeap - before.serverHeap) / held,
            (during.serverRss - before.serverRss) / held,
            (during.agentHeap - before.agentHeap) / held,
            (during.agentRss - before.agentRss) / held);
      }
      pending.close();
      for (Socket s : fillers) {
        s.close();
      }
    }
  }

  /** Whether the response head in {@code buf} is complete (a blank line), or the buffer full. */
  private static boolean headEnded(ByteBuffer buf) {
    int n = buf.position();
    if (n == buf.capacity()) {
      return true;
    }
    byte[] a = buf.array();
    return n >= 4 && a[n - 4] == '\r' && a[n - 3] == '\n' && a[n - 2] == '\r' && a[n - 1] == '\n';
  }

  /** The number in {@code s} (a metric value), or {@code fallback}. */
  private static double parseOr(String s, double fallback) {
    try {
      return Double.parseDouble(s);
    } catch (NumberFormatException e) {
      return fallback;
    }
  }

  /** A non-blocking echo server on one thread: many connections, little data each. */
  private static final class EchoServer implements AutoCloseable {
    private final java.nio.channels.ServerSocketChannel server;
    private final Selector selector;
    private final Thread loop;

    EchoServer(String host, int port, int backlog) throws IOException {
      server = java.nio.channels.ServerSocketChannel.open();
      server.bind(new InetSocketAddress(host, port), backlog);
      server.configureBlocking(false);
      selector = Selector.open();
      server.register(selector, SelectionKey.OP_ACCEPT);
      loop = new Thread(this::run, "burst-echo");
      loop.setDaemon(true);
      loop.start();
    }

    int port() {
      return server.socket().getLocalPort();
    }

    private void run() {
      ByteBuffer buf = ByteBuffer.allocate(64 * 1024);
      try {
        while (selector.isOpen()) {
          selector.select(500);
          for (SelectionKey k : selector.selectedKeys()) {
            if (k.isAcceptable()) {
              SocketChannel c = server.accept();
              if (c != null) {
                c.configureBlocking(false);
                c.register(selector, SelectionKey.OP_READ);
              }
            } else if (k.isReadable()) {
              SocketChannel c = (SocketChannel) k.channel();
              buf.clear();
              int n;
              try {
                n = c.read(buf);
              } catch (IOException e) {
                n = -1;
              }
              if (n < 0) {
                k.cancel();
                c.close();
              } else {
                buf.flip();
                while (buf.hasRemaining()) {
                  c.write(buf); // little data: the socket buffer takes it
                }
              }
            }
          }
          selector.selectedKeys().clear();
        }
      } catch (Exception closed) {
        // done
      }
    }

    @Override
    public void close() throws IOException {
      for (SelectionKey k : selector.keys()) {
        k.channel().close();
      }
      selector.close();
      server.close();
    }
  }

  /** Writes 4 KiB (seeded per stream) on every open stream, reads it back; the intact count. */
  private static int echoAll(List<SocketChannel> open) throws IOException {
    int size = 4096;
    Map<SocketChannel, ByteBuffer> back = new java.util.HashMap<>();
    try (Selector selector = Selector.open()) {
      for (int i = 0; i < open.size(); i++) {
        SocketChannel c = open.get(i);
        byte[] data = new byte[size];
        new java.util.SplittableRandom(i).nextBytes(data);
        ByteBuffer out = ByteBuffer.wrap(data);
        while (out.hasRemaining()) {
          c.write(out);
        }
        back.put(c, ByteBuffer.allocate(size));
        c.register(selector, SelectionKey.OP_READ, i);
      }
      int done = 0;
      int intact = 0;
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while (done < open.size() && System.nanoTime() < deadline) {
        selector.select(1000);
        for (SelectionKey k : selector.selectedKeys()) {
          SocketChannel c = (SocketChannel) k.channel();
          ByteBuffer b = back.get(c);
          int n = c.read(b);
          if (n < 0 || !b.hasRemaining()) {
            k.cancel();
            done++;
            byte[] want = new byte[size];
            new java.util.SplittableRandom((Integer) k.attachment()).nextBytes(want);
            if (!b.hasRemaining() && java.util.Arrays.equals(want, b.array())) {
              intact++;
            }
          }
        }
        selector.selectedKeys().clear();
      }
      return intact;
    }
  }

  private record Burst(Map<String, Integer> statuses, double millis, List<SocketChannel> open)
      implements AutoCloseable {
    @Override
    public void close() throws IOException {
      for (SocketChannel c : open) {
        c.close();
      }
    }
  }

  /**
   * Opens {@code dials} CONNECTs at once; with {@code awaitAnswers} waits for every status line,
   * otherwise returns once every request is written.
   */
  private static Burst burst(
      InetSocketAddress proxy, int port, String host, int dials, boolean awaitAnswers)
      throws IOException {
    byte[] request =
        ("CONNECT " + host + ":" + port + " HTTP/1.1\r\nHost: " + host + "\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII);
    long start = System.nanoTime();
    List<SocketChannel> open = new ArrayList<>(dials);
    Map<String, Integer> statuses = new TreeMap<>();
    try (Selector selector = Selector.open()) {
      for (int i = 0; i < dials; i++) {
        SocketChannel c = SocketChannel.open();
        c.configureBlocking(false);
        c.connect(proxy);
        c.register(selector, SelectionKey.OP_CONNECT, ByteBuffer.allocate(64));
        open.add(c);
      }
      int written = 0;
      int answered = 0;
      long deadline = System.nanoTime() + Duration.ofSeconds(60).toNanos();
      while ((awaitAnswers ? answered : written) < dials && System.nanoTime() < deadline) {
        selector.select(1000);
        for (SelectionKey k : selector.selectedKeys()) {
          SocketChannel c = (SocketChannel) k.channel();
          if (k.isConnectable() && c.finishConnect()) {
            c.write(ByteBuffer.wrap(request));
            written++;
            k.interestOps(awaitAnswers ? SelectionKey.OP_READ : 0);
          } else if (k.isReadable()) {
            ByteBuffer buf = (ByteBuffer) k.attachment();
            if (c.read(buf) < 0 || headEnded(buf)) {
              String line = new String(buf.array(), 0, buf.position(), StandardCharsets.US_ASCII);
              String status = line.length() >= 12 ? line.substring(9, 12) : "closed";
              statuses.merge(status, 1, Integer::sum);
              answered++;
              k.interestOps(0);
            }
          }
        }
        selector.selectedKeys().clear();
      }
      if (awaitAnswers && answered < dials) {
        statuses.put("unanswered", dials - answered);
      }
    }
    return new Burst(statuses, (System.nanoTime() - start) / 1e6, open);
  }

  private static String waitPending(String admin, int dials) throws Exception {
    String last = "?";
    long deadline = System.nanoTime() + Duration.ofSeconds(5).toNanos();
    while (System.nanoTime() < deadline) {
      last = metric(admin, "egress_tunnel_server_pending_dials");
      if (last.equals(Integer.toString(dials)) || last.equals(dials + ".0")) {
        break;
      }
      Thread.sleep(100);
    }
    return last;
  }

  private record Heap(long serverHeap, long serverRss, long agentHeap, long agentRss) {}

  /** Both processes' heap after a forced GC, and their RSS; null without the pids. */
  private static Heap heap(Map<String, String> a) throws Exception {
    if (!a.containsKey("--server-pid") || !a.containsKey("--agent-pid")) {
      return null;
    }
    long serverPid = Long.parseLong(a.get("--server-pid"));
    long agentPid = Long.parseLong(a.get("--agent-pid"));
    return new Heap(heapAfterGc(serverPid), rss(serverPid), heapAfterGc(agentPid), rss(agentPid));
  }

  private static long heapAfterGc(long pid) throws Exception {
    run("jcmd", Long.toString(pid), "GC.run");
    String info = run("jcmd", Long.toString(pid), "GC.heap_info");
    // "garbage-first heap   total 262144K, used 12345K [...]"
    for (String line : info.split("\n")) {
      int used = line.indexOf(" used ");
      if (line.contains("heap") && used > 0) {
        String n = line.substring(used + 6).trim().split("K")[0];
        return Long.parseLong(n) * 1024;
      }
    }
    throw new IllegalStateException("no heap line in: " + info);
  }

  private static long rss(long pid) throws IOException {
    for (String line : Files.readAllLines(Path.of("/proc/" + pid + "/status"))) {
      if (line.startsWith("VmRSS:")) {
        return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
      }
    }
    return 0;
  }

  private static String run(String... cmd) throws Exception {
    Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
    String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
    p.waitFor();
    return out;
  }

  private static String metric(String admin, String name) throws Exception {
    String body =
        HttpClient.newHttpClient()
            .send(
                HttpRequest.newBuilder(URI.create("http://" + admin + "/metrics")).build(),
                HttpResponse.BodyHandlers.ofString())
            .body();
    for (String line : body.split("\n")) {
      if (line.startsWith(name + " ") || line.startsWith(name + "{")) {
        return line.substring(line.lastIndexOf(' ') + 1);
      }
    }
    return "?";
  }

  private static InetSocketAddress hostPort(String s) {
    int colon = s.lastIndexOf(':');
    return new InetSocketAddress(s.substring(0, colon), Integer.parseInt(s.substring(colon + 1)));
  }
}
