package io.egresstunnel.charts;

import static org.assertj.core.api.Assertions.assertThat;

import io.fabric8.kubernetes.api.model.ConfigMap;
import io.fabric8.kubernetes.api.model.Container;
import io.fabric8.kubernetes.api.model.EnvVar;
import io.fabric8.kubernetes.api.model.PodSpec;
import io.fabric8.kubernetes.api.model.PodTemplateSpec;
import io.fabric8.kubernetes.api.model.Volume;
import io.fabric8.kubernetes.api.model.VolumeMount;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One rendered pod template seen as the kubelet would run it on a sample node: environment values
 * from the downward API, {@code $(VAR)} references in args expanded, and files resolved through the
 * volume mounts.
 */
final class PodView {
  /** The sample node the pod "runs" on. */
  static final String NODE_NAME = "node-a";

  static final String NODE_IP = "10.0.0.11";
  static final String NODE_IPS = "10.0.0.11,fd00::11";
  static final String POD_NETWORK_IP = "10.42.0.7";

  private static final Pattern VAR_REF = Pattern.compile("\\$\\(([A-Za-z_][A-Za-z0-9_]*)\\)");

  private final PodTemplateSpec template;
  private final Rendered rendered;
  private final String nodeIp;

  PodView(PodTemplateSpec template, Rendered rendered) {
    this(template, rendered, NODE_IP);
  }

  /** A view on a node whose (only) address is {@code nodeIp}. */
  PodView(PodTemplateSpec template, Rendered rendered, String nodeIp) {
    this.template = template;
    this.rendered = rendered;
    this.nodeIp = nodeIp;
  }

  PodSpec spec() {
    return template.getSpec();
  }

  Map<String, String> labels() {
    return template.getMetadata().getLabels();
  }

  boolean hostNetwork() {
    return Boolean.TRUE.equals(spec().getHostNetwork());
  }

  Container container(String name) {
    return spec().getContainers().stream()
        .filter(c -> c.getName().equals(name))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no container " + name));
  }

  /** The value the kubelet would give each env var on the sample node. */
  Map<String, String> env(Container c) {
    Map<String, String> env = new LinkedHashMap<>();
    for (EnvVar e : c.getEnv()) {
      String value;
      if (e.getValueFrom() != null) {
        assertThat(e.getValueFrom().getFieldRef())
            .as("%s: env %s comes from the downward API", c.getName(), e.getName())
            .isNotNull();
        String field = e.getValueFrom().getFieldRef().getFieldPath();
        value =
            switch (field) {
              case "spec.nodeName" -> NODE_NAME;
              case "status.hostIP" -> nodeIp;
              case "status.hostIPs" -> nodeIp.equals(NODE_IP) ? NODE_IPS : nodeIp;
              case "status.podIP" -> hostNetwork() ? nodeIp : POD_NETWORK_IP;
              case "metadata.name" -> "pod-0";
              case "metadata.namespace" -> Helm.NAMESPACE;
              default -> throw new AssertionError("unexpected downward API field " + field);
            };
      } else {
        value = expand(e.getValue() == null ? "" : e.getValue(), env);
      }
      env.put(e.getName(), value);
    }
    return env;
  }

  /** The container's args with every $(VAR) expanded; a reference to no env var fails. */
  List<String> expandedArgs(Container c) {
    Map<String, String> env = env(c);
    List<String> out = new ArrayList<>();
    for (String arg : c.getArgs()) {
      String expanded = expand(arg, env);
      Matcher left = VAR_REF.matcher(expanded);
      assertThat(left.find())
          .as("%s: arg '%s' names an env var the container does not have", c.getName(), arg)
          .isFalse();
      out.add(expanded);
    }
    return out;
  }

  private static String expand(String s, Map<String, String> env) {
    Matcher m = VAR_REF.matcher(s);
    StringBuilder b = new StringBuilder();
    while (m.find()) {
      String v = env.get(m.group(1));
      m.appendReplacement(b, Matcher.quoteReplacement(v == null ? m.group() : v));
    }
    m.appendTail(b);
    return b.toString();
  }

  /** The mount whose path holds {@code file}, or null. */
  VolumeMount mountOf(Container c, String file) {
    VolumeMount best = null;
    for (VolumeMount m : c.getVolumeMounts()) {
      String dir = m.getMountPath().endsWith("/") ? m.getMountPath() : m.getMountPath() + "/";
      if (file.startsWith(dir) || file.equals(m.getMountPath())) {
        if (best == null || m.getMountPath().length() > best.getMountPath().length()) {
          best = m;
        }
      }
    }
    return best;
  }

  Volume volume(String name) {
    return spec().getVolumes().stream()
        .filter(v -> v.getName().equals(name))
        .findFirst()
        .orElseThrow(() -> new AssertionError("no volume " + name + " for a mount"));
  }

  /** The file name of {@code file} within its mount. */
  static String relative(VolumeMount m, String file) {
    return file.substring(m.getMountPath().length()).replaceFirst("^/", "");
  }

  /**
   * The contents of {@code file} as mounted from a rendered ConfigMap, written to a temporary file
   * (so a command can read it); fails if it is not such a file.
   */
  Path configMapFile(Container c, String file, Path dir) {
    VolumeMount m = mountOf(c, file);
    assertThat(m).as("%s: %s is on a volume", c.getName(), file).isNotNull();
    Volume v = volume(m.getName());
    assertThat(v.getConfigMap()).as("%s: %s comes from a ConfigMap", c.getName(), file).isNotNull();
    ConfigMap cm = rendered.get(ConfigMap.class, v.getConfigMap().getName());
    String key = relative(m, file);
    assertThat(cm.getData()).as("ConfigMap %s", cm.getMetadata().getName()).containsKey(key);
    try {
      Files.createDirectories(dir);
      Path out = Files.createTempFile(dir, key, ".yaml");
      Files.writeString(out, cm.getData().get(key));
      return out;
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }
}
