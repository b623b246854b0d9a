package io.egresstunnel.server;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.cert.X509Certificate;
import java.util.concurrent.CompletableFuture;
import javax.net.ssl.KeyManager;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;

/** A JDK TLS client for the tunnel's TLS listeners, as the apiserver (or an agent) would be. */
final class TlsClient {
  private TlsClient() {}

  /** A TLS connection to {@code address}, handshake done; {@code keys} null for no certificate. */
  static SSLSocket open(InetSocketAddress address, KeyManager[] keys, TrustManager[] trust)
      throws Exception {
    return open(address, keys, trust, null);
  }

  /**
   * As {@link #open(InetSocketAddress, KeyManager[], TrustManager[])}, offering only {@code
   * protocol} (null: the JDK's).
   */
  static SSLSocket open(
      InetSocketAddress address, KeyManager[] keys, TrustManager[] trust, String protocol)
      throws Exception {
    SSLContext ctx = SSLContext.getInstance("TLS");
    ctx.init(keys, trust, null);
    Socket raw = new Socket();
    raw.connect(address, 5_000);
    SSLSocket s =
        (SSLSocket) ctx.getSocketFactory().createSocket(raw, "127.0.0.1", raw.getPort(), true);
    s.setSoTimeout(15_000);
    if (protocol != null) {
      s.setEnabledProtocols(new String[] {protocol});
    }
    s.startHandshake();
    return s;
  }

  /** The subject of the certificate the server presented. */
  static String serverSubject(SSLSocket s) throws Exception {
    return ((X509Certificate) s.getSession().getPeerCertificates()[0])
        .getSubjectX500Principal()
        .getName();
  }

  /** Sends CONNECT for {@code target}; returns the response head (up to the blank line). */
  static String connect(SSLSocket s, String target) throws IOException {
    s.getOutputStream().write(ConnectClient.apiserverRequest(target));
    s.getOutputStream().flush();
    InputStream in = s.getInputStream();
    StringBuilder head = new StringBuilder();
    while (!head.toString().endsWith("\r\n\r\n")) {
      int b = in.read();
      if (b < 0) {
        throw new IOException("closed after " + head);
      }
      head.append((char) b);
    }
    return head.toString();
  }

  /**
   * Sends {@code bytes} random bytes and reads as many back from an echo target, concurrently
   * (SSLSocket cannot half-close).
   */
  static Transfers.Result echoThrough(SSLSocket s, long bytes) throws Exception {
    var sent =
        CompletableFuture.supplyAsync(
            () -> {
              try {
                return Transfers.writeRandom(s.getOutputStream(), bytes, 3);
              } catch (IOException e) {
                throw new UncheckedIOException(e);
              }
            });
    var md = Transfers.sha256();
    byte[] buf = new byte[64 * 1024];
    long left = bytes;
    InputStream in = s.getInputStream();
    while (left > 0) {
      int n = in.read(buf, 0, (int) Math.min(buf.length, left));
      if (n < 0) {
        break;
      }
      md.update(buf, 0, n);
      left -= n;
    }
    return new Transfers.Result(sent.get(), Transfers.hex(md), bytes - left);
  }

  /** Replaces {@code file} with {@code pem} in one rename, as a secret volume update does. */
  static Path replace(Path file, String pem) throws IOException {
    Path tmp =
        Files.writeString(
            file.resolveSibling(file.getFileName() + ".tmp"), pem, StandardCharsets.US_ASCII);
    return Files.move(
        tmp, file, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
  }
}
