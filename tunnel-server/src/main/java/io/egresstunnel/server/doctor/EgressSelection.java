package io.egresstunnel.server.doctor;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * One entry of the kube-apiserver's {@code EgressSelectorConfiguration} ({@code
 * egressSelections[]}), as the apiserver reads it: v1beta1 field names, a TCP URL with optional
 * {@code tlsConfig}, or a Unix socket.
 *
 * @param name {@code cluster}, {@code controlplane} or {@code etcd}
 * @param proxyProtocol {@code HTTPConnect}, {@code GRPC} or {@code Direct}
 * @param url {@code transport.tcp.url}, or null
 * @param udsName {@code transport.uds.udsName}, or null
 * @param caBundle {@code transport.tcp.tlsConfig.caBundle}, or null
 * @param clientCert {@code transport.tcp.tlsConfig.clientCert}, or null
 * @param clientKey {@code transport.tcp.tlsConfig.clientKey}, or null
 */
record EgressSelection(
    String name,
    String proxyProtocol,
    String url,
    String udsName,
    String caBundle,
    String clientCert,
    String clientKey) {

  /** The selections in {@code file}; IllegalArgumentException says what is wrong with it. */
  static List<EgressSelection> read(Path file) throws IOException {
    Object doc;
    try (Reader r = Files.newBufferedReader(file)) {
      doc = new Yaml(new SafeConstructor(new LoaderOptions())).load(r);
    } catch (org.yaml.snakeyaml.error.YAMLException e) {
      throw new IllegalArgumentException(
          "not YAML: " + e.getMessage().lines().findFirst().orElse(""));
    }
    if (!(doc instanceof Map<?, ?> root)) {
      throw new IllegalArgumentException("not a YAML mapping");
    }
    if (!"EgressSelectorConfiguration".equals(root.get("kind"))) {
      throw new IllegalArgumentException(
          "kind is " + root.get("kind") + ", not EgressSelectorConfiguration");
    }
    if (!(root.get("egressSelections") instanceof List<?> list) || list.isEmpty()) {
      throw new IllegalArgumentException("no egressSelections");
    }
    List<EgressSelection> out = new ArrayList<>();
    for (Object o : list) {
      Map<?, ?> sel = map(o);
      Map<?, ?> connection = map(sel.get("connection"));
      Map<?, ?> transport = map(connection.get("transport"));
      Map<?, ?> tcp = map(transport.get("tcp"));
      Map<?, ?> tls = map(tcp.get("tlsConfig"));
      Map<?, ?> uds = map(transport.get("uds"));
      out.add(
          new EgressSelection(
              string(sel.get("name")),
              string(connection.get("proxyProtocol")),
              string(tcp.get("url")),
              string(uds.get("udsName")),
              string(tls.get("caBundle")),
              string(tls.get("clientCert")),
              string(tls.get("clientKey"))));
    }
    return out;
  }

  private static Map<?, ?> map(Object o) {
    return o instanceof Map<?, ?> m ? m : Map.of();
  }

  private static String string(Object o) {
    return o == null ? null : o.toString();
  }
}
