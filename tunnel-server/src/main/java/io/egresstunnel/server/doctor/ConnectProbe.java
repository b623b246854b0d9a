package io.egresstunnel.server.doctor;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.Channels;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.util.List;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SNIHostName;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManagerFactory;

/**
 * One CONNECT as the apiserver sends it, over TCP (plain, or TLS with the apiserver's client
 * certificate and the server name checked) or a Unix socket: the status line, the reason line of an
 * error, and the time until the answer.
 */
final class ConnectProbe {
  /** Longer than the server's default dial timeout (10s), so its own 504 arrives first. */
  private static final int READ_TIMEOUT_MILLIS = 15_000;

  private static final int MAX_ANSWER_BYTES = 8192;

  private ConnectProbe() {}

  /** The apiserver's TLS identity and trust, or null for a plain listener. */
  record Tls(
      String serverName, X509Certificate[] chain, PrivateKey key, List<X509Certificate> ca) {}

  /**
   * What came back.
   *
   * @param status the HTTP status code
   * @param statusLine the first line
   * @param reason the first line of the body, or empty
   * @param nanos time from the first byte sent to the end of the answer's head
   */
  record Answer(int status, String statusLine, String reason, long nanos) {}

  static Answer overTcp(InetSocketAddress address, Tls tls, String target) throws Exception {
    Socket raw = new Socket();
    raw.connect(address, 5_000);
    raw.setSoTimeout(READ_TIMEOUT_MILLIS);
    Socket s = raw;
    if (tls != null) {
      SSLSocket t =
          (SSLSocket)
              context(tls)
                  .getSocketFactory()
                  .createSocket(raw, tls.serverName(), address.getPort(), true);
      SSLParameters p = t.getSSLParameters();
      p.setEndpointIdentificationAlgorithm("HTTPS"); // the apiserver checks the server's name
      if (!CertificateChecks.isIpLiteral(tls.serverName())) {
        p.setServerNames(List.of(new SNIHostName(tls.serverName())));
      }
      t.setSSLParameters(p);
      t.startHandshake();
      s = t;
    }
    try (Socket closing = s) {
      return exchange(closing.getInputStream(), closing.getOutputStream(), target);
    }
  }

  static Answer overUds(Path socket, String target) throws IOException {
    try (SocketChannel ch = SocketChannel.open(StandardProtocolFamily.UNIX)) {
      ch.connect(UnixDomainSocketAddress.of(socket));
      // a blocking channel's streams have no read timeout; the server's dial timeout bounds it
      return exchange(Channels.newInputStream(ch), Channels.newOutputStream(ch), target);
    }
  }

  private static Answer exchange(InputStream in, OutputStream out, String target)
      throws IOException {
    byte[] request =
        ("CONNECT "
                + target
                + " HTTP/1.1\r\nHost: "
                + target
                + "\r\nUser-Agent: tunnel-server"
                + " doctor\r\n\r\n")
            .getBytes(StandardCharsets.US_ASCII);
    long start = System.nanoTime();
    out.write(request);
    out.flush();
    ByteArrayOutputStream head = new ByteArrayOutputStream();
    while (!endsWithBlankLine(head)) {
      int b = in.read();
      if (b < 0) {
        throw new IOException(
            "the server closed the connection after "
                + head.size()
                + " byte(s) of answer: "
                + head.toString(StandardCharsets.ISO_8859_1).strip());
      }
      head.write(b);
      if (head.size() > MAX_ANSWER_BYTES) {
        throw new IOException("the answer's head is longer than " + MAX_ANSWER_BYTES + " bytes");
      }
    }
    long nanos = System.nanoTime() - start;
    String text = head.toString(StandardCharsets.ISO_8859_1);
    String statusLine = text.lines().findFirst().orElse("");
    String[] parts = statusLine.split(" ", 3);
    int status;
    try {
      status = Integer.parseInt(parts[1]);
    } catch (RuntimeException e) {
      throw new IOException("not an HTTP answer: " + statusLine);
    }
    String reason = "";
    if (status != 200) {
      int length = contentLength(text);
      byte[] body = in.readNBytes(length >= 0 ? Math.min(length, MAX_ANSWER_BYTES) : 512);
      reason = new String(body, StandardCharsets.UTF_8).lines().findFirst().orElse("");
    }
    return new Answer(status, statusLine, reason, nanos);
  }

  private static boolean endsWithBlankLine(ByteArrayOutputStream head) {
    byte[] b = head.toByteArray();
    int n = b.length;
    return n >= 4 && b[n - 4] == '\r' && b[n - 3] == '\n' && b[n - 2] == '\r' && b[n - 1] == '\n';
  }

  private static int contentLength(String head) {
    for (String line : head.split("\r\n")) {
      int colon = line.indexOf(':');
      if (colon > 0 && line.substring(0, colon).trim().equalsIgnoreCase("content-length")) {
        try {
          return Integer.parseInt(line.substring(colon + 1).trim());
        } catch (NumberFormatException e) {
          return -1;
        }
      }
    }
    return -1;
  }

  private static SSLContext context(Tls tls) throws Exception {
    KeyStore keys = KeyStore.getInstance("PKCS12");
    keys.load(null, null);
    char[] password = "doctor".toCharArray();
    keys.setKeyEntry("apiserver", tls.key(), password, tls.chain());
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(keys, password);
    KeyStore trust = KeyStore.getInstance("PKCS12");
    trust.load(null, null);
    int i = 0;
    for (X509Certificate c : tls.ca()) {
      trust.setCertificateEntry("ca-" + i++, c);
    }
    TrustManagerFactory tmf =
        TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
    return ctx;
  }
}
