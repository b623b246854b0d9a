package io.egresstunnel.server;

import static org.assertj.core.api.Assertions.assertThat;

import io.egresstunnel.routing.EgressMode;
import io.egresstunnel.server.frontend.ConnectTarget;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.util.NetUtil;
import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.Inet4Address;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.SplittableRandom;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.LongAdder;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Fuzzes the whole CONNECT path of a real server on loopback: mutations of a valid request, each on
 * a fresh connection. Every connection must end in exactly one of: a well-formed {@code HTTP/1.1}
 * error with a documented status and a one-line reason, or (when the request named the echo target)
 * a {@code 200} after which bytes flow to the target and back. A silent close, a reset before the
 * answer, a malformed answer or no answer at all is a failure.
 *
 * <p>The server dials what a request names, so every generated case is first checked against what
 * Netty could read as its target: a case that could make the server dial anything but the echo
 * target or the refusing address (another loopback port, a name to resolve) is regenerated.
 */
class ConnectRequestFuzzTest {
  private static final Logger log = LoggerFactory.getLogger(ConnectRequestFuzzTest.class);

  private static final long SEED = 0x0C0_44EC7L;
  private static final int CASES = 3_000;
  private static final int CLIENTS = 48;

  /** The server's limit for the whole request: each incomplete case costs one of these. */
  private static final Duration REQUEST_READ_TIMEOUT = Duration.ofSeconds(1);

  /** A hang detector only, far above anything the server may take to answer. */
  private static final int CLIENT_READ_TIMEOUT_MILLIS = 30_000;

  private static final Set<Integer> ERROR_STATUSES =
      Set.of(400, 403, 405, 408, 414, 431, 502, 503, 504, 505);
  private static final byte[] CONNECTED =
      "HTTP/1.1 200 Connection established\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
  private static final Pattern HEAD =
      Pattern.compile("HTTP/1\\.1 (\\d{3}) ([^\\r\\n]+)\\r\\n((?:[^\\r\\n]+\\r\\n)*)\\r\\n");

  private static final String[] EARLY_DATA_KINDS = {
    "text without a newline", "an HTTP request", "a TLS ClientHello", "a NUL first", "random bytes"
  };

  /** Reasons that carry control characters from the request: counted, not failed (known bug). */
  private static final LongAdder RAW_CONTROLS_IN_REASON = new LongAdder();

  private static TunnelFixture fx;
  private static TestTarget echo;
  private static Socket refusing;
  private static InetSocketAddress echoAddress;
  private static InetSocketAddress refusedAddress;
  private static int maxHeaderBytes;
  private static int maxRequestLine;

  @BeforeAll
  static void startServerAndTargets() throws Exception {
    fx =
        new TunnelFixture(EgressMode.DISABLED, l -> l.withConnectReadTimeout(REQUEST_READ_TIMEOUT));
    maxHeaderBytes = fx.server.config().limits().maxHeaderBytes();
    maxRequestLine = fx.server.config().limits().maxRequestLine();
    echo = new TestTarget("127.3.41.7", 0, TestTarget::echo);
    echoAddress = new InetSocketAddress(InetAddress.getByName(echo.address()), echo.port());
    // Bound and never listening: the kernel refuses every dial to it, and nobody else can bind it.
    refusing = new Socket();
    refusing.bind(new InetSocketAddress("127.3.41.8", 0));
    refusedAddress = (InetSocketAddress) refusing.getLocalSocketAddress();
  }

  @AfterAll
  static void stopServerAndTargets() throws IOException {
    if (fx != null) {
      fx.close();
    }
    if (echo != null) {
      echo.close();
    }
    if (refusing != null) {
      refusing.close();
    }
  }

  @Test
  void everyMutatedRequestGetsOneDocumentedAnswerAndTheServerStaysHealthy() throws Exception {
    List<Case> cases = generate(new Random(SEED), CASES);
    int acceptedBefore = echo.accepted.get();
    Map<String, LongAdder> outcomes = new ConcurrentHashMap<>();
    List<String> failures = new ArrayList<>();
    ExecutorService clients = Executors.newFixedThreadPool(CLIENTS);
    try {
      List<Future<String>> results = new ArrayList<>();
      for (int i = 0; i < cases.size(); i++) {
        Case c = cases.get(i);
        long probeSeed = SEED ^ i;
        results.add(clients.submit(() -> run(c, probeSeed, outcomes)));
      }
      for (int i = 0; i < results.size(); i++) {
        String failure = results.get(i).get();
        if (failure != null) {
          failures.add("case " + i + " [" + cases.get(i).kind() + "]: " + failure);
        }
      }
    } finally {
      clients.shutdownNow();
    }
    log.info(
        "{} cases, outcomes by kind: {}; {} reasons with raw control characters",
        cases.size(),
        new TreeMap<>(outcomes),
        RAW_CONTROLS_IN_REASON.sum());
    assertThat(failures).as("%d failures", failures.size()).isEmpty();

    // Only the cases that got their 200 reached the target: no dial without an answer to it.
    long tunnels =
        outcomes.entrySet().stream()
            .filter(e -> e.getKey().endsWith(" 200"))
            .mapToLong(e -> e.getValue().sum())
            .sum();
    assertThat(tunnels).as("cases tunnelled").isPositive();
    assertThat(echo.accepted.get() - acceptedBefore).isEqualTo((int) tunnels);

    // The server is still healthy: a plain CONNECT carries data intact, a GET gets its 405.
    ConnectClient.Answer ok = connectUntilNotTimedOut(echoAddress);
    assertThat(ok.status()).isEqualTo(200);
    try (Socket s = ok.socket()) {
      Transfers.Result r = Transfers.echo(s, 4L << 20, SEED);
      assertThat(r.received()).isEqualTo(4L << 20);
      assertThat(r.receivedSha()).isEqualTo(r.sentSha());
    }
    ConnectClient.Answer get =
        ConnectClient.send(
            fx.proxy(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
    assertThat(get.status()).isEqualTo(405);
  }

  /**
   * A client may send its first bytes for the target right behind the request, in the same segment,
   * without waiting for the 200: ConnectHandler#switchToRaw promises that bytes the codec buffered
   * reach the relay.
   *
   * <p>HttpServerCodec would go on decoding the bytes behind the CONNECT as the next request while
   * the dial is in flight, and ConnectHandler would drop that second message: the decoder stops
   * after one request (ConnectHandler.OneRequestDecoder), so a TLS ClientHello, {@code \0abc},
   * random bytes and a pipelined request all arrive.
   */
  @Test
  void bytesSentRightBehindTheRequestReachTheTargetIntactAndFirst() throws Exception {
    Random r = new Random(SEED + 1);
    Map<String, List<String>> failures = new TreeMap<>();
    for (int i = 0; i < 200; i++) {
      String kind = EARLY_DATA_KINDS[i % EARLY_DATA_KINDS.length];
      byte[] early = earlyData(kind, r);
      byte[] request = validRequest(echoAddress, r);
      try (Socket s = new Socket()) {
        s.connect(fx.proxy(), 10_000);
        s.setSoTimeout(CLIENT_READ_TIMEOUT_MILLIS);
        s.getOutputStream().write(splice(request, request.length, 0, early));
        InputStream in = new BufferedInputStream(s.getInputStream());
        byte[] head = readHead(in);
        byte[] back = new byte[0];
        byte[] probe = "probe".getBytes(StandardCharsets.US_ASCII);
        if (Arrays.equals(head, CONNECTED)) {
          s.getOutputStream().write(probe);
          s.shutdownOutput();
          back = in.readAllBytes();
        }
        if (!Arrays.equals(head, CONNECTED)
            || !Arrays.equals(back, splice(early, early.length, 0, probe))) {
          failures
              .computeIfAbsent(kind, k -> new ArrayList<>())
              .add(dump(early) + " came back as " + dump(back) + " after " + dump(head));
        }
      }
    }
    assertThat(failures).as("failures by kind of early data").isEmpty();
  }

  private static byte[] earlyData(String kind, Random r) {
    return switch (kind) {
      case "text without a newline" -> "hello, no newline".getBytes(StandardCharsets.US_ASCII);
      case "an HTTP request" ->
          "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
      case "a TLS ClientHello" -> // record header and the start of a handshake
          new byte[] {0x16, 0x03, 0x01, 0x00, (byte) 0xC8, 0x01, 0x00, 0x00, (byte) 0xC4, 0x03};
      case "a NUL first" -> "\0abc".getBytes(StandardCharsets.US_ASCII);
      default -> {
        byte[] b = new byte[1 + r.nextInt(2_000)];
        r.nextBytes(b);
        yield b;
      }
    };
  }

  /**
   * A client that shuts its output right after its request (printf ... | nc -N) gets its 200, and
   * the half-close travels to the target, whose own close then ends the tunnel.
   */
  @Test
  void aClientThatHalfClosesRightAfterItsRequestGetsItsTunnelAndItsEnd() throws Exception {
    Random r = new Random(SEED + 2);
    List<String> failures = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      halfCloseRightBehind(validRequest(echoAddress, r), new byte[0], failures);
    }
    assertThat(failures).as("%d of 20 failed", failures.size()).isEmpty();
  }

  /**
   * {@code printf 'CONNECT ...\r\n\r\nGET / HTTP/1.0\r\n\r\n' | nc -N}: bytes right behind the
   * request and then the end of the client's side, all before the 200. The bytes reach the target
   * first, then the end: they were dropped when the end came before the relay took over.
   */
  @Test
  void bytesAndAnEndRightBehindTheRequestReachTheTargetInOrder() throws Exception {
    Random r = new Random(SEED + 3);
    List<String> failures = new ArrayList<>();
    for (int i = 0; i < 20; i++) {
      byte[] request = validRequest(echoAddress, r);
      byte[] early = earlyData(EARLY_DATA_KINDS[i % EARLY_DATA_KINDS.length], r);
      halfCloseRightBehind(request, early, failures);
    }
    assertThat(failures).as("%d of 20 failed", failures.size()).isEmpty();
  }

  /**
   * Sends {@code request}, then {@code early}, then the end of the client's side, all at once;
   * after the 200 the echo target must send back exactly {@code early} and then its end. What went
   * otherwise is added to {@code failures}.
   */
  private static void halfCloseRightBehind(byte[] request, byte[] early, List<String> failures)
      throws IOException {
    try (Socket s = new Socket()) {
      s.connect(fx.proxy(), 10_000);
      s.setSoTimeout(CLIENT_READ_TIMEOUT_MILLIS);
      s.getOutputStream().write(splice(request, request.length, 0, early));
      s.shutdownOutput();
      InputStream in = new BufferedInputStream(s.getInputStream());
      byte[] head = readHead(in);
      if (!Arrays.equals(head, CONNECTED)) {
        failures.add("answer " + dump(head) + " to " + dump(request));
        return;
      }
      try {
        byte[] back = in.readAllBytes();
        if (!Arrays.equals(back, early)) {
          failures.add(dump(back) + " echoed for " + dump(early) + " after " + dump(request));
        }
      } catch (SocketTimeoutException e) {
        failures.add("no EOF after the 200 in " + CLIENT_READ_TIMEOUT_MILLIS + " ms");
      }
    }
  }

  /**
   * A 400 for a request Netty cannot decode says {@code "malformed request: " +
   * cause.getMessage()}, and Netty's messages quote the offending bytes raw: a NUL, DEL, VT, ESC or
   * C1 control from the request ends up in the reason body the client gets and in the server's
   * debug log line for it (only CR and LF are replaced), unlike ConnectTarget's own messages, which
   * pass the client's text through {@code printable}. About 4% of the fuzz cases hit this.
   */
  @Test
  void aMalformedRequestsReasonHasNoControlCharacters() throws Exception {
    String target = echoAddress.getAddress().getHostAddress() + ":" + echoAddress.getPort();
    String[] requests = {
      "CONNECT " + target + " HTTP/1.1\r\nHo\u001b[2Jst: x\r\n\r\n",
      "CONNECT " + target + " HTTP/1.1\r\nHost\0: x\r\n\r\n",
      "CONNECT " + target + " H\0TTP/1.1\r\nHost: x\r\n\r\n",
      "CONNECT " + target + " HTTP/1.\u007f\r\nHost: x\r\n\r\n",
      "CONNECT " + target + " HTTP/1.1\r\u000bHost: x\r\n\r\n",
      "CONNECT " + target + " HTTP/1.1\r\nX\u0085Y: x\r\n\r\n"
    };
    List<String> failures = new ArrayList<>();
    for (String request : requests) {
      ConnectClient.Answer a =
          ConnectClient.send(fx.proxy(), request.getBytes(StandardCharsets.ISO_8859_1));
      String reason = a.body().endsWith("\n") ? a.body().substring(0, a.body().length() - 1) : "";
      if (a.status() != 400 || !isPrintable(reason)) {
        failures.add(
            a.status()
                + " "
                + dump(a.body().getBytes(StandardCharsets.UTF_8))
                + " for "
                + dump(request.getBytes(StandardCharsets.ISO_8859_1)));
      }
    }
    assertThat(failures).isEmpty();
  }

  /** No C0 control, DEL or C1 control: text that is safe to show and to log. */
  private static boolean isPrintable(String s) {
    return s.chars().noneMatch(ch -> ch < 0x20 || (ch >= 0x7F && ch < 0xA0));
  }

  /**
   * A 408 is the documented answer to a request not read within the read timeout, which a loaded
   * machine can cause even for a complete request; only that answer is retried.
   */
  private static ConnectClient.Answer connectUntilNotTimedOut(InetSocketAddress target)
      throws IOException {
    ConnectClient.Answer a = null;
    for (int attempt = 0; attempt < 3 && (a == null || a.status() == 408); attempt++) {
      a =
          ConnectClient.connect(
              fx.proxy(), target.getAddress().getHostAddress() + ":" + target.getPort());
    }
    return a;
  }

  // ---- running one case ----

  /** What a case requires beyond the rules every case follows. */
  enum Expect {
    /** Any documented error, or a 200 that tunnels. */
    ANY,
    /** A 200 that tunnels exactly the probe (a 408 is allowed too, see above). */
    TUNNEL,
    /** Never a 200. */
    ERROR
  }

  /**
   * One generated request.
   *
   * @param statuses the error statuses allowed besides 408; empty for any documented one
   * @param halfClose whether the client shuts its output right after the request
   */
  record Case(
      String kind, byte[] request, boolean halfClose, Expect expect, Set<Integer> statuses) {
    Case(String kind, byte[] request, Expect expect, Integer... statuses) {
      this(kind, request, false, expect, Set.of(statuses));
    }
  }

  /** Runs one case on a fresh connection; returns why it failed, or null. */
  private static String run(Case c, long probeSeed, Map<String, LongAdder> outcomes) {
    try (Socket s = new Socket()) {
      s.connect(fx.proxy(), 10_000);
      s.setSoTimeout(CLIENT_READ_TIMEOUT_MILLIS);
      OutputStream out = s.getOutputStream();
      try {
        out.write(c.request());
        out.flush();
        if (c.halfClose()) {
          s.shutdownOutput();
        }
      } catch (IOException e) {
        // The server answered and closed before taking everything (an oversized request).
      }
      InputStream in = new BufferedInputStream(s.getInputStream());
      String outcome;
      String failure;
      byte[] head;
      try {
        head = readHead(in);
      } catch (SocketTimeoutException e) {
        count(outcomes, c, "no answer");
        return "no answer and no close in " + CLIENT_READ_TIMEOUT_MILLIS + " ms to " + dump(c);
      } catch (IOException e) {
        count(outcomes, c, "reset");
        return "connection failed before any answer (" + e + ") to " + dump(c);
      }
      if (head.length == 0) {
        count(outcomes, c, "silent close");
        return "closed without an answer: " + dump(c);
      }
      if (startsWith(head, CONNECTED) && head.length == CONNECTED.length) {
        outcome = "200";
        failure = checkTunnel(c, s, in, probeSeed);
      } else {
        Matcher m = HEAD.matcher(new String(head, StandardCharsets.ISO_8859_1));
        outcome = m.matches() ? m.group(1) : "malformed";
        failure = checkError(c, m, in);
      }
      count(outcomes, c, outcome);
      return failure == null ? null : failure + " for " + dump(c);
    } catch (IOException e) {
      return "client failed: " + e + " for " + dump(c);
    }
  }

  private static void count(Map<String, LongAdder> outcomes, Case c, String outcome) {
    String key = c.kind() + (c.halfClose() ? " half-closed " : " ") + outcome;
    outcomes.computeIfAbsent(key, k -> new LongAdder()).increment();
  }

  /** The response head up to and including its blank line; what came before EOF otherwise. */
  private static byte[] readHead(InputStream in) throws IOException {
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    int matched = 0;
    byte[] end = {'\r', '\n', '\r', '\n'};
    while (matched < 4 && head.size() < 16 * 1024) {
      int b = in.read();
      if (b < 0) {
        break;
      }
      head.write(b);
      matched = b == end[matched] ? matched + 1 : (b == '\r' ? 1 : 0);
    }
    return head.toByteArray();
  }

  private static String checkError(Case c, Matcher m, InputStream in) throws IOException {
    if (!m.matches()) {
      return "malformed response head";
    }
    int status = Integer.parseInt(m.group(1));
    if (!ERROR_STATUSES.contains(status)) {
      return "undocumented status " + status;
    }
    if (status != 408 && !c.statuses().isEmpty() && !c.statuses().contains(status)) {
      return "status " + status + ", expected one of " + c.statuses() + " or 408";
    }
    if (c.expect() == Expect.TUNNEL && status != 408) {
      return "status " + status + " for a request that should tunnel";
    }
    if (!m.group(2).equals(HttpResponseStatus.valueOf(status).reasonPhrase())) {
      return "reason phrase '" + m.group(2) + "' for " + status;
    }
    Map<String, String> headers = new LinkedHashMap<>();
    for (String line : m.group(3).split("\r\n")) {
      int colon = line.indexOf(':');
      if (colon <= 0) {
        return "malformed header line '" + line + "'";
      }
      headers.put(line.substring(0, colon).toLowerCase(), line.substring(colon + 1).trim());
    }
    if (!"text/plain; charset=utf-8".equals(headers.get("content-type"))
        || !"close".equals(headers.get("connection"))
        || !headers.containsKey("content-length")
        || (status == 405 && !"CONNECT".equals(headers.get("allow")))) {
      return "headers " + headers + " of a " + status;
    }
    int length = Integer.parseInt(headers.get("content-length"));
    if (isHead(c.request())) {
      // A response to HEAD never has content (RFC 9110, 9.3.2); the codec leaves it out.
      return in.read() < 0 ? null : "content after the head of a response to HEAD";
    }
    byte[] body = in.readNBytes(length);
    if (body.length != length) {
      return "body of " + body.length + " bytes, content-length " + length;
    }
    String reason;
    try {
      reason =
          StandardCharsets.UTF_8
              .newDecoder()
              .onMalformedInput(CodingErrorAction.REPORT)
              .onUnmappableCharacter(CodingErrorAction.REPORT)
              .decode(ByteBuffer.wrap(body))
              .toString();
    } catch (CharacterCodingException e) {
      return "reason body is not UTF-8";
    }
    if (reason.isBlank()
        || !reason.endsWith("\n")
        || reason.indexOf('\n') != reason.length() - 1
        || reason.indexOf('\r') >= 0) {
      return "reason body is not one non-empty line: '" + reason + "'";
    }
    if (!isPrintable(reason.substring(0, reason.length() - 1))) {
      RAW_CONTROLS_IN_REASON.increment(); // a known bug, see the disabled test below
    }
    try {
      int extra = in.read();
      if (extra >= 0) {
        return "bytes after the body of a " + status;
      }
    } catch (IOException e) {
      // A reset after the whole answer (the server closed with request bytes unread) loses
      // nothing the client needs.
    }
    return null;
  }

  /** After a 200: the probe (or the half-close) goes to the echo target and comes back. */
  private static String checkTunnel(Case c, Socket s, InputStream in, long probeSeed)
      throws IOException {
    if (c.expect() == Expect.ERROR) {
      return "a 200 for a request that must fail";
    }
    byte[] probe = new byte[0];
    if (!c.halfClose()) {
      SplittableRandom r = new SplittableRandom(probeSeed);
      probe = new byte[1 + r.nextInt(8 * 1024)];
      for (int i = 0; i < probe.length; i++) {
        probe[i] = (byte) r.nextInt(256);
      }
      s.getOutputStream().write(probe);
      s.getOutputStream().flush();
      s.shutdownOutput();
    }
    byte[] back;
    try {
      back = in.readAllBytes();
    } catch (SocketTimeoutException e) {
      return "the tunnel neither echoed nor closed in " + CLIENT_READ_TIMEOUT_MILLIS + " ms";
    }
    if (back.length < probe.length
        || !Arrays.equals(back, back.length - probe.length, back.length, probe, 0, probe.length)) {
      return "tunnel returned " + back.length + " bytes that do not end with the probe";
    }
    // Before the probe may come bytes the client sent after its request, in order.
    byte[] early = Arrays.copyOf(back, back.length - probe.length);
    if (c.expect() == Expect.TUNNEL && early.length > 0) {
      return "tunnel returned " + early.length + " bytes before the probe";
    }
    if (early.length > 0 && indexOf(c.request(), early) < 0) {
      return "tunnel returned bytes before the probe that the client never sent";
    }
    return null;
  }

  /** Whether Netty reads the request's method as HEAD (it skips leading controls and spaces). */
  private static boolean isHead(byte[] request) {
    int i = 0;
    while (i < request.length && ((request[i] & 0xFF) <= 0x20 || request[i] == 0x7F)) {
      i++;
    }
    byte[] head = "HEAD ".getBytes(StandardCharsets.US_ASCII);
    return request.length - i >= head.length
        && Arrays.equals(request, i, i + head.length, head, 0, head.length);
  }

  // ---- generating cases ----

  private static byte[] validRequest(InetSocketAddress target, Random r) {
    String authority = authority(target, r);
    String host = r.nextBoolean() ? authority : "127.0.0.1";
    StringBuilder b = new StringBuilder("CONNECT ").append(authority).append(" HTTP/1.1\r\n");
    b.append("Host: ").append(host).append("\r\n");
    switch (r.nextInt(4)) {
      case 0 -> b.append("User-Agent: kube-apiserver/v1.33.0\r\n");
      case 1 ->
          b.append("Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n");
      default -> {
        // the apiserver's request, nothing else
      }
    }
    return b.append("\r\n").toString().getBytes(StandardCharsets.US_ASCII);
  }

  private static String authority(InetSocketAddress target, Random r) {
    String ip = target.getAddress().getHostAddress();
    return switch (r.nextInt(8)) {
      case 0 -> "[::ffff:" + ip + "]:" + target.getPort();
      case 1 -> ip + ":" + "0".repeat(1 + r.nextInt(3)) + target.getPort();
      default -> ip + ":" + target.getPort();
    };
  }

  private static List<Case> generate(Random r, int count) {
    List<Case> cases = new ArrayList<>(count);
    while (cases.size() < count) {
      Case c = generateOne(r);
      if (dialsOnlyKnownTargets(c.request())) {
        cases.add(c);
      }
    }
    return cases;
  }

  private static Case generateOne(Random r) {
    byte[] valid = validRequest(echoAddress, r);
    int kind = r.nextInt(100);
    if (kind < 6) {
      return new Case("valid", valid, Expect.TUNNEL);
    }
    if (kind < 8) {
      return new Case("refused", validRequest(refusedAddress, r), Expect.ERROR, 502);
    }
    if (kind < 28) {
      return new Case("flip", flip(valid, r), r.nextInt(4) == 0, Expect.ANY, Set.of());
    }
    if (kind < 33) {
      byte[] cut = Arrays.copyOf(valid, r.nextInt(valid.length - 1));
      return new Case("truncate", cut, r.nextBoolean(), Expect.ERROR, Set.of());
    }
    if (kind < 48) {
      return new Case("insert", insert(valid, r), r.nextInt(4) == 0, Expect.ANY, Set.of());
    }
    if (kind < 54) {
      return new Case("delete", delete(valid, r), r.nextInt(4) == 0, Expect.ANY, Set.of());
    }
    if (kind < 60) {
      return duplicatedHeaders(valid, r);
    }
    if (kind < 64) {
      return hugeHeaders(valid, r);
    }
    if (kind < 68) {
      return hugeLine(r);
    }
    if (kind < 74) {
      return wrongMethod(valid, r);
    }
    if (kind < 79) {
      return wrongVersion(valid, r);
    }
    if (kind < 85) {
      return new Case("non-ascii", nonAscii(valid, r), r.nextInt(4) == 0, Expect.ANY, Set.of());
    }
    return garbage(r);
  }

  private static byte[] flip(byte[] valid, Random r) {
    byte[] b = valid.clone();
    int flips = 1 + r.nextInt(4);
    for (int i = 0; i < flips; i++) {
      int at = r.nextInt(b.length);
      b[at] =
          switch (r.nextInt(3)) {
            case 0 -> (byte) (b[at] ^ (1 << r.nextInt(8)));
            case 1 -> (byte) r.nextInt(256);
            default -> interesting(r);
          };
    }
    return b;
  }

  private static byte interesting(Random r) {
    byte[] bytes = {
      0,
      '\r',
      '\n',
      ' ',
      '\t',
      0x7F,
      (byte) 0x80,
      (byte) 0xFF,
      ':',
      '[',
      ']',
      '%',
      '/',
      '0',
      '9',
      'A'
    };
    return bytes[r.nextInt(bytes.length)];
  }

  private static byte[] insert(byte[] valid, Random r) {
    String[] pieces = {
      "\r",
      "\n",
      "\0",
      " ",
      "\t",
      "\r\n",
      "\r\n\r\n",
      "\u007f",
      "\u00ff",
      "é",
      "%00",
      "%0d%0a",
      ":",
      "  "
    };
    byte[] b = valid;
    int inserts = 1 + r.nextInt(3);
    for (int i = 0; i < inserts; i++) {
      String piece = pieces[r.nextInt(pieces.length)];
      byte[] p =
          piece.equals("é")
              ? piece.getBytes(StandardCharsets.UTF_8)
              : piece.getBytes(StandardCharsets.ISO_8859_1);
      b = splice(b, r.nextInt(b.length + 1), 0, p);
    }
    return b;
  }

  private static byte[] delete(byte[] valid, Random r) {
    int at = r.nextInt(valid.length);
    int n = Math.min(valid.length - at, 1 + r.nextInt(8));
    return splice(valid, at, n, new byte[0]);
  }

  private static Case duplicatedHeaders(byte[] valid, Random r) {
    String[] headers = {
      "Host: 127.0.0.1\r\n",
      "Host: 127.9.9.9\r\n",
      "Content-Length: 0\r\n",
      "Transfer-Encoding: chunked\r\n",
      "Connection: close\r\n",
      "X-A: " + "v".repeat(40) + "\r\n"
    };
    String h = headers[r.nextInt(headers.length)];
    int copies = 1 + r.nextInt(250);
    byte[] dup = h.repeat(copies).getBytes(StandardCharsets.US_ASCII);
    int afterRequestLine = indexOf(valid, "\r\n".getBytes(StandardCharsets.US_ASCII)) + 2;
    byte[] b = splice(valid, afterRequestLine, 0, dup);
    // The decoder counts header bytes without their CRLFs; well above its limit is too large.
    int headerBytes = b.length - afterRequestLine - 2 * countCrlf(b, afterRequestLine);
    if (headerBytes > maxHeaderBytes + 64) {
      return new Case("dup-headers", b, Expect.ERROR, 431);
    }
    return new Case("dup-headers", b, Expect.ANY);
  }

  private static Case hugeHeaders(byte[] valid, Random r) {
    int afterRequestLine = indexOf(valid, "\r\n".getBytes(StandardCharsets.US_ASCII)) + 2;
    int size = maxHeaderBytes + 1 + r.nextInt(56 * 1024);
    String headers =
        switch (r.nextInt(3)) {
          case 0 -> "X-Big: " + "b".repeat(size) + "\r\n";
          case 1 -> "X-" + "n".repeat(size) + ": v\r\n";
          default -> "X-Small: 0123456789012345678901234567890123456789\r\n".repeat(size / 50 + 1);
        };
    if (r.nextInt(4) == 0) { // just under the limit: still served
      String under = "X-Under: " + "u".repeat(maxHeaderBytes - 400) + "\r\n";
      return new Case(
          "big-headers",
          splice(valid, afterRequestLine, 0, under.getBytes(StandardCharsets.US_ASCII)),
          Expect.TUNNEL);
    }
    byte[] b = splice(valid, afterRequestLine, 0, headers.getBytes(StandardCharsets.US_ASCII));
    return new Case("huge-headers", b, Expect.ERROR, 431);
  }

  private static Case hugeLine(Random r) {
    int size = maxRequestLine + 1 + r.nextInt(56 * 1024);
    String target = echoAddress.getAddress().getHostAddress() + ":" + echoAddress.getPort();
    String line =
        switch (r.nextInt(4)) {
          case 0 -> "CONNECT " + "a".repeat(size) + ":443 HTTP/1.1";
          case 1 -> "CONNECT " + target + "/" + "p".repeat(size) + " HTTP/1.1";
          case 2 -> "M".repeat(size) + " " + target + " HTTP/1.1";
          default -> "CONNECT " + target + " HTTP/1.1" + " ".repeat(size);
        };
    if (r.nextInt(4) == 0) { // under the line limit, but no valid target
      return new Case(
          "long-line",
          ("CONNECT " + "a".repeat(maxRequestLine - 200) + ":443 HTTP/1.1\r\nHost: x\r\n\r\n")
              .getBytes(StandardCharsets.US_ASCII),
          Expect.ERROR,
          400);
    }
    return new Case(
        "huge-line",
        (line + "\r\nHost: x\r\n\r\n").getBytes(StandardCharsets.US_ASCII),
        Expect.ERROR,
        414);
  }

  private static Case wrongMethod(byte[] valid, Random r) {
    String[] methods = {
      "GET",
      "POST",
      "PUT",
      "HEAD",
      "OPTIONS",
      "TRACE",
      "PATCH",
      "DELETE",
      "PRI",
      "connect",
      "Connect",
      "CONNECTX",
      "XCONNECT",
      "CONNEC"
    };
    int space = indexOf(valid, new byte[] {' '});
    if (r.nextInt(4) == 0) { // a method with a character no token allows
      byte[] weird = "CON\u0001NECT".getBytes(StandardCharsets.ISO_8859_1);
      weird[r.nextInt(weird.length)] =
          (byte) (r.nextBoolean() ? 0x01 + r.nextInt(8) : 0x80 + r.nextInt(128));
      return new Case(
          "method with a control or non-ASCII byte",
          splice(valid, 0, space, weird),
          Expect.ERROR,
          400,
          405);
    }
    String method = methods[r.nextInt(methods.length)];
    byte[] bytes = method.getBytes(StandardCharsets.US_ASCII);
    return new Case("method " + method, splice(valid, 0, space, bytes), Expect.ERROR, 405);
  }

  private static Case wrongVersion(byte[] valid, Random r) {
    String[] versions = {
      "HTTP/2.0",
      "HTTP/0.9",
      "HTTP/1",
      "HTTP/1.1.1",
      "http/1.1",
      "FOO/1.1",
      "",
      "HTTP/11.1",
      "HTTP/1.1 extra",
      "HTTP/-1.1",
      "HTTP/1.1\0",
      "HTTP/1.0"
    };
    byte[] v11 = "HTTP/1.1".getBytes(StandardCharsets.US_ASCII);
    int at = indexOf(valid, v11);
    String version = versions[r.nextInt(versions.length)];
    byte[] bytes = version.getBytes(StandardCharsets.ISO_8859_1);
    String kind = "version '" + version.replace("\0", "\\0") + "'";
    return new Case(kind, splice(valid, at, v11.length, bytes), Expect.ANY);
  }

  private static byte[] nonAscii(byte[] valid, Random r) {
    byte[] b = valid.clone();
    int n = 1 + r.nextInt(4);
    for (int i = 0; i < n; i++) {
      b[r.nextInt(b.length)] = (byte) (0x80 + r.nextInt(128));
    }
    if (r.nextBoolean()) {
      byte[] utf8 = "Ünïcødé ☃ 𝄞".getBytes(StandardCharsets.UTF_8);
      b = splice(b, r.nextInt(b.length), 0, utf8);
    }
    return b;
  }

  private static Case garbage(Random r) {
    byte[] b = new byte[r.nextInt(10) == 0 ? 0 : 1 + r.nextInt(4_096)];
    r.nextBytes(b);
    if (r.nextBoolean()) {
      b = splice(b, b.length, 0, "\r\n\r\n".getBytes(StandardCharsets.US_ASCII));
    }
    return new Case("garbage", b, r.nextBoolean(), Expect.ERROR, Set.of());
  }

  /**
   * Whether every way Netty could read a target out of {@code request} is either no target or one
   * of the two known ones. Netty's target is a run of bytes between whitespace on one line; every
   * run between bytes up to SP (or DEL) is tried, read as ISO-8859-1 and as UTF-8. A run with such
   * a byte inside is no target, since {@link ConnectTarget} refuses control characters and spaces.
   */
  static boolean dialsOnlyKnownTargets(byte[] request) {
    int start = 0;
    for (int i = 0; i <= request.length; i++) {
      if (i == request.length || (request[i] & 0xFF) <= 0x20 || request[i] == 0x7F) {
        if (i > start
            && (!knownOrNone(new String(request, start, i - start, StandardCharsets.ISO_8859_1))
                || !knownOrNone(new String(request, start, i - start, StandardCharsets.UTF_8)))) {
          return false;
        }
        start = i + 1;
      }
    }
    return true;
  }

  private static boolean knownOrNone(String token) {
    ConnectTarget t;
    try {
      t = ConnectTarget.parse(token);
    } catch (IllegalArgumentException e) {
      return true;
    }
    byte[] literal = NetUtil.createByteArrayFromIpAddressString(t.host());
    if (literal == null) {
      return false; // a name: the server would resolve it
    }
    try {
      InetAddress a = InetAddress.getByAddress(literal);
      InetSocketAddress dialled = new InetSocketAddress(a, t.port());
      return a instanceof Inet4Address
          && (dialled.equals(echoAddress) || dialled.equals(refusedAddress));
    } catch (IOException e) {
      return false;
    }
  }

  // ---- bytes ----

  private static byte[] splice(byte[] b, int at, int remove, byte[] insert) {
    byte[] out = new byte[b.length - remove + insert.length];
    System.arraycopy(b, 0, out, 0, at);
    System.arraycopy(insert, 0, out, at, insert.length);
    System.arraycopy(b, at + remove, out, at + insert.length, b.length - at - remove);
    return out;
  }

  static int indexOf(byte[] haystack, byte[] needle) {
    outer:
    for (int i = 0; i + needle.length <= haystack.length; i++) {
      for (int j = 0; j < needle.length; j++) {
        if (haystack[i + j] != needle[j]) {
          continue outer;
        }
      }
      return i;
    }
    return -1;
  }

  private static int countCrlf(byte[] b, int from) {
    int n = 0;
    for (int i = from; i + 1 < b.length; i++) {
      if (b[i] == '\r' && b[i + 1] == '\n') {
        n++;
      }
    }
    return n;
  }

  private static boolean startsWith(byte[] b, byte[] prefix) {
    return b.length >= prefix.length
        && Arrays.equals(b, 0, prefix.length, prefix, 0, prefix.length);
  }

  /** The request as a Java string literal (bytes escaped), capped, with flags. */
  static String dump(Case c) {
    return dump(c.request()) + (c.halfClose() ? " + half-close" : "");
  }

  static String dump(byte[] bytes) {
    StringBuilder b = new StringBuilder("\"");
    for (int i = 0; i < bytes.length && i < 400; i++) {
      int v = bytes[i] & 0xFF;
      switch (v) {
        case '\r' -> b.append("\\r");
        case '\n' -> b.append("\\n");
        case '"', '\\' -> b.append('\\').append((char) v);
        default -> {
          if (v < 0x20 || v >= 0x7F) {
            b.append(String.format("\\x%02x", v));
          } else {
            b.append((char) v);
          }
        }
      }
    }
    b.append('"');
    if (bytes.length > 400) {
      b.append("... (").append(bytes.length).append(" bytes)");
    }
    return b.toString();
  }
}
