package io.egresstunnel.proto.net;

import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import javax.net.ssl.SSLContext;

/**
 * How every TLS context of a process is set up: the oldest protocol version accepted, an optional
 * restriction of cipher suites, and how often certificate files are checked for rotation.
 *
 * @param minVersion {@code VersionTLS12} or {@code VersionTLS13} (the names Kubernetes uses)
 * @param cipherSuites the only suites offered (IANA names), or empty for Netty's defaults, which
 *     are AEAD suites with forward secrecy only
 * @param reloadInterval how often certificate, key and CA files are checked for changes
 */
public record TlsOptions(String minVersion, List<String> cipherSuites, Duration reloadInterval) {
  public static final String TLS12 = "VersionTLS12";
  public static final String TLS13 = "VersionTLS13";

  public TlsOptions {
    if (!TLS12.equals(minVersion) && !TLS13.equals(minVersion)) {
      throw new IllegalArgumentException(
          "TLS minimum version must be " + TLS12 + " or " + TLS13 + ", not " + minVersion);
    }
    cipherSuites = List.copyOf(cipherSuites);
    Set<String> supported = supportedSuites();
    List<String> unknown = new ArrayList<>();
    for (String s : cipherSuites) {
      if (!supported.contains(s)) {
        unknown.add(s);
      }
    }
    if (!unknown.isEmpty()) {
      throw new IllegalArgumentException(
          "unsupported TLS cipher suites "
              + unknown
              + "; this JVM supports "
              + supported.stream().filter(s -> s.startsWith("TLS_")).sorted().toList());
    }
    if (reloadInterval.isNegative() || reloadInterval.isZero()) {
      throw new IllegalArgumentException("the TLS reload interval must be positive");
    }
  }

  /** TLS 1.2 and 1.3, Netty's default suites, files checked every 10 s. */
  public static TlsOptions defaults() {
    return new TlsOptions(TLS12, List.of(), Duration.ofSeconds(10));
  }

  public TlsOptions withReloadInterval(Duration interval) {
    return new TlsOptions(minVersion, cipherSuites, interval);
  }

  /** What a TLS connection carries, which decides its engine. */
  public enum Carries {
    /**
     * One client's byte stream (the CONNECT listeners), whose end may be a half-close: the client
     * sends close_notify and still reads the answer, as TLS 1.3 allows. The JDK's engine keeps the
     * other direction open; netty-tcnative's closes both on close_notify, so it is not used here.
     */
    CLIENT_STREAM,
    /**
     * The websocket between agent and server, which ends as a whole: BoringSSL through
     * netty-tcnative where its native library loads, the JDK's engine elsewhere.
     */
    TUNNEL
  }

  /** Applies the engine, protocol versions and suites to {@code b}. */
  public SslContextBuilder apply(SslContextBuilder b, Carries carries) {
    b.sslProvider(provider(carries));
    b.protocols(
        TLS13.equals(minVersion) ? new String[] {"TLSv1.3"} : new String[] {"TLSv1.3", "TLSv1.2"});
    if (!cipherSuites.isEmpty()) {
      b.ciphers(cipherSuites);
    }
    return b;
  }

  static SslProvider provider(Carries carries) {
    return carries == Carries.TUNNEL && OpenSsl.isAvailable()
        ? SslProvider.OPENSSL
        : SslProvider.JDK;
  }

  /** The engine of {@code carries}' connections, for the startup log. */
  public static String engine(Carries carries) {
    return provider(carries) == SslProvider.OPENSSL ? OpenSsl.versionString() : "JDK";
  }

  private static Set<String> supportedSuites() {
    try {
      return Set.of(SSLContext.getDefault().getSupportedSSLParameters().getCipherSuites());
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException("the JVM has no default TLS context", e);
    }
  }
}
