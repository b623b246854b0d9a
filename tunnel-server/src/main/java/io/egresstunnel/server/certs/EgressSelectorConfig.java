package io.egresstunnel.server.certs;

import java.nio.file.Path;

/**
 * The kube-apiserver's {@code EgressSelectorConfiguration} ({@code apiserver.k8s.io/v1beta1}, the
 * file of {@code --egress-selector-config-file}) that sends the {@code cluster} egress through
 * tunnel-server with HTTP CONNECT (or Konnectivity's GRPC). Field names are those of the
 * apiserver's v1beta1 types: {@code transport.tcp.url} with {@code tlsConfig.caBundle}, {@code
 * clientKey} and {@code clientCert} (file paths), or {@code transport.uds.udsName} (a socket path
 * without a {@code unix://} prefix).
 */
final class EgressSelectorConfig {
  private EgressSelectorConfig() {}

  /**
   * CONNECT over TCP with TLS: the apiserver checks the server against caBundle and presents its
   * client certificate.
   */
  static String tcp(String url, Path caBundle, Path clientCert, Path clientKey) {
    return header()
        + "      tcp:\n"
        + "        url: "
        + quote(url)
        + "\n"
        + "        tlsConfig:\n"
        + "          caBundle: "
        + quote(caBundle.toString())
        + "\n"
        + "          clientKey: "
        + quote(clientKey.toString())
        + "\n"
        + "          clientCert: "
        + quote(clientCert.toString())
        + "\n";
  }

  /** CONNECT over a Unix socket, for a server beside the apiserver (no TLS). */
  static String uds(Path socket) {
    return header("HTTPConnect") + udsTransport(socket);
  }

  /**
   * Konnectivity's GRPC over a Unix socket (the apiserver speaks GRPC over nothing else); the same
   * socket serves CONNECT too.
   */
  static String grpcUds(Path socket) {
    return header("GRPC") + udsTransport(socket);
  }

  private static String udsTransport(Path socket) {
    return "      uds:\n" + "        udsName: " + quote(socket.toString()) + "\n";
  }

  private static String header() {
    return header("HTTPConnect");
  }

  private static String header(String proxyProtocol) {
    return "apiVersion: apiserver.k8s.io/v1beta1\n"
        + "kind: EgressSelectorConfiguration\n"
        + "egressSelections:\n"
        + "- name: cluster\n"
        + "  connection:\n"
        + "    proxyProtocol: "
        + proxyProtocol
        + "\n"
        + "    transport:\n";
  }

  /** A YAML double-quoted scalar, so no path or host can change the document's structure. */
  static String quote(String s) {
    StringBuilder b = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> b.append("\\\"");
        case '\\' -> b.append("\\\\");
        case '\n' -> b.append("\\n");
        case '\t' -> b.append("\\t");
        default -> {
          if (c < 0x20 || c == 0x7f) {
            b.append(String.format("\\x%02x", (int) c));
          } else {
            b.append(c);
          }
        }
      }
    }
    return b.append('"').toString();
  }
}
