package io.egresstunnel.charts;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.yaml.snakeyaml.DumperOptions;
import org.yaml.snakeyaml.Yaml;

/**
 * Chart values set by dotted keys ({@code server.kind}), written to a values file for helm. Only
 * what a case changes is set; the chart's values.yaml supplies the rest.
 */
final class Values {
  private final Map<String, Object> flat;

  private Values(Map<String, Object> flat) {
    this.flat = flat;
  }

  static Values defaults() {
    return new Values(new LinkedHashMap<>());
  }

  /** These values with {@code key} set; a {@code null} value is written as YAML null. */
  Values with(String key, Object value) {
    Map<String, Object> copy = new LinkedHashMap<>(flat);
    copy.put(key, value);
    return new Values(copy);
  }

  /** The value set for {@code key}, or {@code fallback}. */
  Object get(String key, Object fallback) {
    return flat.getOrDefault(key, fallback);
  }

  String getString(String key, String fallback) {
    return String.valueOf(flat.getOrDefault(key, fallback));
  }

  boolean getBoolean(String key, boolean fallback) {
    return (Boolean) flat.getOrDefault(key, fallback);
  }

  /** The nested form helm reads. */
  Map<String, Object> nested() {
    Map<String, Object> root = new LinkedHashMap<>();
    for (Map.Entry<String, Object> e : flat.entrySet()) {
      String[] parts = e.getKey().split("\\.");
      Map<String, Object> m = root;
      for (int i = 0; i < parts.length - 1; i++) {
        @SuppressWarnings("unchecked")
        Map<String, Object> next =
            (Map<String, Object>) m.computeIfAbsent(parts[i], k -> new LinkedHashMap<>());
        m = next;
      }
      m.put(parts[parts.length - 1], e.getValue());
    }
    return root;
  }

  String toYaml() {
    DumperOptions options = new DumperOptions();
    options.setDefaultFlowStyle(DumperOptions.FlowStyle.BLOCK);
    return new Yaml(options).dump(nested());
  }

  /** Writes the values file into {@code dir}, named by its contents, and returns it. */
  Path writeTo(Path dir) {
    String yaml = toYaml();
    try {
      byte[] digest =
          MessageDigest.getInstance("SHA-256").digest(yaml.getBytes(StandardCharsets.UTF_8));
      Path file = dir.resolve("values-" + HexFormat.of().formatHex(digest, 0, 8) + ".yaml");
      if (!Files.exists(file)) {
        Path tmp = Files.createTempFile(dir, "values", ".tmp");
        Files.writeString(tmp, yaml);
        Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE);
      }
      return file;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public String toString() {
    if (flat.isEmpty()) {
      return "{defaults}";
    }
    StringBuilder b = new StringBuilder("{");
    for (Map.Entry<String, Object> e : flat.entrySet()) {
      if (b.length() > 1) {
        b.append(", ");
      }
      Object v = e.getValue();
      String shown =
          v instanceof String s && s.length() > 40 ? s.substring(0, 12) + "..." : String.valueOf(v);
      b.append(e.getKey()).append('=').append(v instanceof List<?> ? v : shown);
    }
    return b.append('}').toString();
  }
}
