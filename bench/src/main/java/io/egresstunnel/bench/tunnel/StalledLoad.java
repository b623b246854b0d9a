package io.egresstunnel.bench.tunnel;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.atomic.LongAdder;

/**
 * Stalled readers beside a fast stream: {@code --stalled} CONNECTs whose targets send without end
 * and whose clients read nothing, then one download of {@code --mib} MiB, checksummed, through the
 * same server and agent. Prints the fast stream's throughput with the stalled ones beside it and
 * alone (in the same run), how much the stalled streams made the server and agent hold (Netty's
 * buffer memory, from their /metrics: the credit window bounds it), and the host's TCP memory and
 * aborts on memory. With {@code --baseline-proxy HOST:PORT} (e.g. squid) it then runs the same
 * against that proxy, for a ratio measured in the same run.
 *
 * <p>Run: {@code java -cp bench/target/benchmarks.jar io.egresstunnel.bench.tunnel.StalledLoad
 * --proxy 127.0.0.1:8090 --target-host 127.0.0.2 --stalled 1000 --mib 512 --server-admin
 * 127.0.0.1:8092 --agent-admin 127.0.0.1:8093 [--baseline-proxy 127.0.0.1:3128]}
 */
public final class StalledLoad {
  private StalledLoad() {}

  public static void main(String[] args) throws Exception {
    java.util.Map<String, String> a = new java.util.TreeMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      a.put(args[i], args[i + 1]);
    }
    if (!a.containsKey("--proxy")) {
      System.err.println("StalledLoad: --proxy HOST:PORT is required (see the class comment)");
      System.exit(2);
    }
    String[] p = a.get("--proxy").split(":");
    InetSocketAddress proxy = new InetSocketAddress(p[0], Integer.parseInt(p[1]));
    String host = a.getOrDefault("--target-host", "127.0.0.2");
    int stalled = Integer.parseInt(a.getOrDefault("--stalled", "1000"));
    long bytes = Long.parseLong(a.getOrDefault("--mib", "512")) << 20;

    try (ServerSocket source = new ServerSocket()) {
      source.bind(new InetSocketAddress(host, 0), 4096);
      Thread acceptor = new Thread(() -> serve(source));
      acceptor.setDaemon(true);
      acceptor.start();
      String target = host + ":" + source.getLocalPort();
      long holdMillis = Long.parseLong(a.getOrDefault("--hold-seconds", "0")) * 1000;

      Result tunnel =
          run(
              "tunnel",
              proxy,
              target,
              stalled,
              bytes,
              holdMillis,
              a.get("--server-admin"),
              a.get("--agent-admin"));
      if (a.containsKey("--baseline-proxy")) {
        String[] b = a.get("--baseline-proxy").split(":");
        Result base;
        try {
          base =
              run(
                  "baseline",
                  new InetSocketAddress(b[0], Integer.parseInt(b[1])),
                  target,
                  stalled,
                  bytes,
                  holdMillis,
                  null,
                  null);
        } catch (IllegalStateException | java.io.IOException e) {
          // The baseline's failure is a finding, not this tool's: report it.
          System.out.println("baseline: " + e.getMessage());
          return;
        }
        System.out.printf(
            "tunnel / baseline proxy (%s), fast stream beside the stalled ones: %.2fx%n",
            a.get("--baseline-proxy"), tunnel.beside / base.beside);
      }
    }
  }

  /** One run's fast-stream speeds, in bytes per second. */
  private record Result(double alone, double beside) {}

  /**
   * The fast download alone, then {@code stalled} stalled streams, then the download beside them;
   * prints what it saw, including the kernel's TCP memory and aborts on memory (they are per host:
   * every hop of the run counts), and closes the stalled streams.
   */
  private static Result run(
      String name,
      InetSocketAddress proxy,
      String target,
      int stalled,
      long bytes,
      long holdMillis,
      String serverAdmin,
      String agentAdmin)
      throws Exception {
    boolean strict =
        serverAdmin != null; // the tunnel's losses fail the run; a baseline's are reported
    double alone = download(name, proxy, target, bytes, strict);
    long serverBefore = netty(serverAdmin);
    long agentBefore = netty(agentAdmin);
    long abortsBefore = kernel("/proc/net/netstat", "TCPAbortOnMemory");
    long sourceBefore = SENT_TO_STALLED.sum();
    List<Socket> stalls = new ArrayList<>();
    try {
      for (int i = 0; i < stalled; i++) {
        Socket s = connect(proxy, target, 16 * 1024);
        s.getOutputStream().write(0); // "send without end", and then read nothing
        stalls.add(s);
      }
      // Wait until every stalled stream is full: its target can send no more.
      for (long last = -1, now = SENT_TO_STALLED.sum(); now != last; now = SENT_TO_STALLED.sum()) {
        last = now;
        Thread.sleep(2000);
      }
      Thread.sleep(holdMillis);
      long serverHeld = netty(serverAdmin) - serverBefore;
      long agentHeld = netty(agentAdmin) - agentBefore;
      long kernelPages = kernel("/proc/net/sockstat", "mem");
      long absorbed = SENT_TO_STALLED.sum() - sourceBefore;
      double beside = download(name, proxy, target, bytes, strict);
      long aborts = kernel("/proc/net/netstat", "TCPAbortOnMemory") - abortsBefore;
      System.out.printf(
          "%s: fast stream %.0f MB/s alone, %.0f MB/s beside %d stalled readers (%.2fx)%n",
          name, alone / 1e6, beside / 1e6, stalled, beside / alone);
      System.out.printf(
          "%s: the stalled streams absorbed %.0f KiB each before their targets stopped; kernel TCP"
              + " memory %.0f MiB (all hops), %d aborted on memory%n",
          name, absorbed / 1024.0 / stalled, kernelPages * 4096 / 1048576.0, aborts);
      if (serverAdmin != null) {
        System.out.printf(
            "%s: Netty memory held for the stalled streams: server %.1f MiB (%.0f KiB each), agent"
                + " %.1f MiB (%.0f KiB each)%n",
            name,
            serverHeld / 1048576.0,
            serverHeld / 1024.0 / stalled,
            agentHeld / 1048576.0,
            agentHeld / 1024.0 / stalled);
      }
      return new Result(alone, beside);
    } finally {
      for (Socket s : stalls) {
        s.close();
      }
      Thread.sleep(3000); // let the closes drain the kernel's buffers before what comes next
    }
  }

  /** Bytes the source has written to stalled streams' connections. */
  private static final LongAdder SENT_TO_STALLED = new LongAdder();

  /**
   * A counter of the kernel's: {@code mem} of the TCP line of /proc/net/sockstat (pages), or a
   * TcpExt field of /proc/net/netstat; 0 where the file is missing.
   */
  private static long kernel(String file, String field) {
    try {
      List<String> lines = java.nio.file.Files.readAllLines(java.nio.file.Path.of(file));
      for (int i = 0; i < lines.size(); i++) {
        String[] names = lines.get(i).split("\\s+");
        if (file.endsWith("sockstat") && names[0].equals("TCP:")) {
          for (int j = 1; j + 1 < names.length; j += 2) {
            if (names[j].equals(field)) {
              return Long.parseLong(names[j + 1]);
            }
          }
        }
        if (names[0].equals("TcpExt:") && i + 1 < lines.size()) {
          String[] values = lines.get(i + 1).split("\\s+");
          for (int j = 1; j < names.length; j++) {
            if (names[j].equals(field)) {
              return Long.parseLong(values[j]);
            }
          }
          return 0;
        }
      }
    } catch (java.io.IOException | RuntimeException missing) {
      // not Linux, or no such field: report 0
    }
    return 0;
  }

  /**
   * Each connection's first byte says what it wants: 0 = send without end (a stalled reader's
   * target), 1 = send the next 8-byte count of bytes, seeded, then close.
   */
  private static void serve(ServerSocket source) {
    try {
      while (true) {
        Socket s = source.accept();
        Thread t =
            new Thread(
                () -> {
                  try (s) {
                    InputStream in = s.getInputStream();
                    OutputStream out = s.getOutputStream();
                    int kind = in.read();
                    if (kind == 0) {
                      // A stalled stream's target: a small send buffer, so that this test's
                      // own kernel buffers do not exhaust the machine's TCP memory.
                      s.setSendBufferSize(64 * 1024);
                    }
                    byte[] chunk = new byte[64 * 1024];
                    new SplittableRandom(9).nextBytes(chunk);
                    if (kind == 0) {
                      while (true) {
                        out.write(chunk);
                        SENT_TO_STALLED.add(chunk.length);
                      }
                    }
                    long n = new java.io.DataInputStream(in).readLong();
                    for (long left = n; left > 0; left -= chunk.length) {
                      out.write(chunk, 0, (int) Math.min(chunk.length, left));
                    }
                  } catch (Exception closed) {
                    // the client went away
                  }
                });
        t.setDaemon(true);
        t.start();
      }
    } catch (Exception closed) {
      // done
    }
  }

  private static Socket connect(InetSocketAddress proxy, String target) throws Exception {
    return connect(proxy, target, 0);
  }

  /**
   * A CONNECT; {@code receiveBuffer} > 0 keeps the kernel from absorbing much for a stalled one.
   */
  private static Socket connect(InetSocketAddress proxy, String target, int receiveBuffer)
      throws Exception {
    Socket s = new Socket();
    if (receiveBuffer > 0) {
      s.setReceiveBufferSize(receiveBuffer);
    }
    s.connect(proxy, 10_000);
    s.getOutputStream()
        .write(
            ("CONNECT " + target + " HTTP/1.1\r\nHost: x\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
    byte[] head = s.getInputStream().readNBytes(39);
    String line = new String(head, StandardCharsets.US_ASCII);
    if (!line.startsWith("HTTP/1.1 200")) {
      throw new IllegalStateException(line.strip());
    }
    return s;
  }

  /**
   * Downloads {@code bytes} through the proxy, checks them, returns bytes per second. A loss throws
   * when {@code strict}, and is printed otherwise.
   */
  private static double download(
      String name, InetSocketAddress proxy, String target, long bytes, boolean strict)
      throws Exception {
    try (Socket s = connect(proxy, target)) {
      OutputStream out = s.getOutputStream();
      out.write(1);
      new java.io.DataOutputStream(out).writeLong(bytes);
      byte[] chunk = new byte[64 * 1024];
      new SplittableRandom(9).nextBytes(chunk);
      MessageDigest want = MessageDigest.getInstance("SHA-256");
      MessageDigest got = MessageDigest.getInstance("SHA-256");
      for (long left = bytes; left > 0; left -= chunk.length) {
        want.update(chunk, 0, (int) Math.min(chunk.length, left));
      }
      InputStream in = s.getInputStream();
      byte[] buf = new byte[256 * 1024];
      long start = System.nanoTime();
      long n = 0;
      for (int r; (r = in.read(buf)) > 0; ) {
        got.update(buf, 0, r);
        n += r;
      }
      double secs = (System.nanoTime() - start) / 1e9;
      if (n != bytes || !Arrays.equals(want.digest(), got.digest())) {
        String lost = "the fast stream lost bytes: " + n + " of " + bytes + " arrived";
        if (strict) {
          throw new IllegalStateException(lost);
        }
        System.out.println(name + ": " + lost);
      }
      return n / secs;
    }
  }

  /** Netty's direct buffer memory of a process, from its /metrics; 0 without an address. */
  private static long netty(String admin) throws Exception {
    return (long) metric(admin, "netty_memory_bytes{type=\"direct\"}");
  }

  private static double metric(String admin, String series) throws Exception {
    if (admin == null) {
      return 0;
    }
    String body =
        java.net.http.HttpClient.newHttpClient()
            .send(
                java.net.http.HttpRequest.newBuilder(
                        java.net.URI.create("http://" + admin + "/metrics"))
                    .build(),
                java.net.http.HttpResponse.BodyHandlers.ofString())
            .body();
    for (String line : body.split("\n")) {
      if (line.contains(series)) {
        return Double.parseDouble(line.substring(line.lastIndexOf(' ') + 1));
      }
    }
    return 0;
  }
}
