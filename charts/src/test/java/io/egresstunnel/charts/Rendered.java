package io.egresstunnel.charts;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.fabric8.kubernetes.api.model.GenericKubernetesResource;
import io.fabric8.kubernetes.api.model.HasMetadata;
import io.fabric8.kubernetes.api.model.KubernetesResource;
import io.fabric8.kubernetes.client.utils.KubernetesSerialization;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.stream.Collectors;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;

/**
 * The objects of one {@code helm template} run, each parsed into its fabric8 model type. Parsing is
 * strict: a kind fabric8 does not know fails (unless it is one of the {@link #CUSTOM_KINDS}, whose
 * fields are checked here), and so does any field its type does not have, at any depth (fabric8
 * keeps those in {@code additionalProperties}; they are looked for everywhere).
 */
final class Rendered {
  private static final KubernetesSerialization SERIALIZATION = new KubernetesSerialization();
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Custom resources the chart may render: apiVersion/kind, and the fields each level may use. */
  static final Map<String, Map<String, Set<String>>> CUSTOM_KINDS =
      Map.of(
          "monitoring.coreos.com/v1/ServiceMonitor",
          Map.of(
              "", Set.of("apiVersion", "kind", "metadata", "spec"),
              "spec",
                  Set.of(
                      "selector",
                      "namespaceSelector",
                      "endpoints",
                      "jobLabel",
                      "targetLabels",
                      "podTargetLabels",
                      "sampleLimit"),
              "spec.selector", Set.of("matchLabels", "matchExpressions"),
              "spec.namespaceSelector", Set.of("matchNames", "any"),
              "spec.endpoints[]",
                  Set.of(
                      "port",
                      "targetPort",
                      "path",
                      "scheme",
                      "interval",
                      "scrapeTimeout",
                      "honorLabels",
                      "relabelings",
                      "metricRelabelings")));

  private final String yaml;
  private final List<HasMetadata> objects;

  private Rendered(String yaml, List<HasMetadata> objects) {
    this.yaml = yaml;
    this.objects = objects;
  }

  String yaml() {
    return yaml;
  }

  List<HasMetadata> objects() {
    return objects;
  }

  static Rendered parse(String yaml) {
    LoaderOptions options = new LoaderOptions();
    options.setAllowDuplicateKeys(false);
    List<HasMetadata> objects = new ArrayList<>();
    int index = 0;
    for (Object doc : new Yaml(new SafeConstructor(options)).loadAll(yaml)) {
      index++;
      if (doc == null) {
        continue; // an empty document: a template that rendered nothing
      }
      if (!(doc instanceof Map<?, ?> map)) {
        throw new AssertionError("document " + index + " is not a mapping: " + doc);
      }
      String apiVersion = String.valueOf(map.get("apiVersion"));
      String kind = String.valueOf(map.get("kind"));
      String where = "document " + index + " (" + apiVersion + " " + kind + ")";
      String json;
      try {
        json = JSON.writeValueAsString(map);
      } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
        throw new AssertionError(where + ": " + e.getMessage(), e);
      }
      Object parsed;
      try {
        parsed = SERIALIZATION.unmarshal(json);
      } catch (RuntimeException e) {
        throw new AssertionError(where + " does not parse into its type: " + e.getMessage(), e);
      }
      Class<? extends KubernetesResource> registered =
          SERIALIZATION.getRegisteredKubernetesResource(apiVersion, kind);
      if (registered == null || parsed instanceof GenericKubernetesResource) {
        Map<String, Set<String>> fields = CUSTOM_KINDS.get(apiVersion + "/" + kind);
        if (fields == null) {
          throw new AssertionError(where + ": a kind fabric8's model does not know");
        }
        checkFields(where, "", map, fields);
      } else {
        List<String> unknown = new ArrayList<>();
        unknownFields(parsed, kind, unknown);
        if (!unknown.isEmpty()) {
          throw new AssertionError(where + " has fields its type does not know: " + unknown);
        }
      }
      objects.add((HasMetadata) parsed);
    }
    return new Rendered(yaml, List.copyOf(objects));
  }

  /** Every object of {@code type}. */
  <T extends HasMetadata> List<T> all(Class<T> type) {
    return objects.stream().filter(type::isInstance).map(type::cast).toList();
  }

  /** The one object of {@code type} named {@code name}, or null. */
  <T extends HasMetadata> T find(Class<T> type, String name) {
    List<T> found = all(type).stream().filter(o -> name.equals(o.getMetadata().getName())).toList();
    if (found.size() > 1) {
      throw new AssertionError(found.size() + " " + type.getSimpleName() + "s named " + name);
    }
    return found.isEmpty() ? null : found.get(0);
  }

  /** The one object of {@code type} named {@code name}; fails if there is none. */
  <T extends HasMetadata> T get(Class<T> type, String name) {
    T found = find(type, name);
    if (found == null) {
      throw new AssertionError(
          "no "
              + type.getSimpleName()
              + " named "
              + name
              + " among "
              + objects.stream()
                  .map(o -> o.getKind() + "/" + o.getMetadata().getName())
                  .collect(Collectors.joining(", ")));
    }
    return found;
  }

  /** Kind/name of every object, for messages and checks of what was rendered. */
  List<String> names() {
    return objects.stream().map(o -> o.getKind() + "/" + o.getMetadata().getName()).toList();
  }

  private static void checkFields(
      String where, String path, Object node, Map<String, Set<String>> allowed) {
    Set<String> fields = allowed.get(path);
    if (node instanceof Map<?, ?> map && fields != null) {
      for (Map.Entry<?, ?> e : map.entrySet()) {
        String key = String.valueOf(e.getKey());
        if (!fields.contains(key)) {
          throw new AssertionError(
              where + ": field " + (path.isEmpty() ? key : path + "." + key) + " is not allowed");
        }
        checkFields(where, path.isEmpty() ? key : path + "." + key, e.getValue(), allowed);
      }
    } else if (node instanceof List<?> list) {
      for (Object item : list) {
        checkFields(where, path + "[]", item, allowed);
      }
    }
  }

  /**
   * Collects the fields of {@code o} and everything under it that fabric8 put into {@code
   * additionalProperties}: fields the Kubernetes type does not have.
   */
  /** The getters of each model class: its fields, and additionalProperties. */
  private static final ClassValue<List<Method>> GETTERS =
      new ClassValue<>() {
        @Override
        protected List<Method> computeValue(Class<?> type) {
          List<Method> out = new ArrayList<>();
          for (Method m : type.getMethods()) {
            if (m.getParameterCount() == 0
                && !Modifier.isStatic(m.getModifiers())
                && !m.getDeclaringClass().isInterface()
                && m.getDeclaringClass() != Object.class
                && m.getName().startsWith("get")) {
              out.add(m);
            }
          }
          return List.copyOf(out);
        }
      };

  static void unknownFields(Object o, String path, List<String> out) {
    if (o == null) {
      return;
    }
    if (o instanceof Map<?, ?> map) {
      for (Map.Entry<?, ?> e : map.entrySet()) {
        unknownFields(e.getValue(), path + "[" + e.getKey() + "]", out);
      }
      return;
    }
    if (o instanceof Collection<?> c) {
      int i = 0;
      for (Object item : c) {
        unknownFields(item, path + "[" + i++ + "]", out);
      }
      return;
    }
    if (!o.getClass().getName().startsWith("io.fabric8.kubernetes.api.model")) {
      return;
    }
    for (Method m : GETTERS.get(o.getClass())) {
      Object value;
      try {
        value = m.invoke(o);
      } catch (IllegalAccessException | InvocationTargetException e) {
        continue;
      }
      if (m.getName().equals("getAdditionalProperties")) {
        if (value instanceof Map<?, ?> extra && !extra.isEmpty()) {
          out.add(path + ": " + extra.keySet());
        }
        continue;
      }
      String field = Character.toLowerCase(m.getName().charAt(3)) + m.getName().substring(4);
      unknownFields(value, path + "." + field, out);
    }
  }
}
