package io.egresstunnel.proto.config;

import java.io.IOException;
import java.io.Reader;
import java.nio.charset.StandardCharsets;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.constructor.SafeConstructor;
import org.yaml.snakeyaml.error.Mark;
import org.yaml.snakeyaml.error.MarkedYAMLException;
import org.yaml.snakeyaml.error.YAMLException;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.SequenceNode;
import org.yaml.snakeyaml.nodes.Tag;

/**
 * A config file as K3s reads its config.yaml: one YAML mapping from flag names without their dashes
 * to values, each a scalar or a sequence of scalars. Scalars are kept as written ({@code 0600}
 * stays {@code 0600}, {@code yes} stays {@code yes}); the option they set checks them.
 */
final class ConfigFile {
  /** The longest file read, far beyond any sensible configuration. */
  static final int MAX_CHARS = 1 << 20;

  /** One key of the file: its value(s) as written and the line it is on. */
  record Entry(String key, List<String> values, boolean sequence, int line) {
    /** The value as a YAML reader would see it written: {@code mode: pod}. */
    String display() {
      return key + ": " + (sequence ? "[" + String.join(", ", values) + "]" : values.get(0));
    }
  }

  private final Path path;
  private final Map<String, Entry> entries;

  private ConfigFile(Path path, Map<String, Entry> entries) {
    this.path = path;
    this.entries = entries;
  }

  Path path() {
    return path;
  }

  Map<String, Entry> entries() {
    return entries;
  }

  /** Reads and parses {@code path}; IllegalArgumentException says what is wrong and where. */
  static ConfigFile read(Path path) {
    String text;
    try {
      if (Files.size(path) > MAX_CHARS) {
        throw new IllegalArgumentException(
            "config file " + path + " is larger than " + MAX_CHARS + " bytes");
      }
      text = Files.readString(path, StandardCharsets.UTF_8);
    } catch (NoSuchFileException e) {
      throw new IllegalArgumentException("config file " + path + " does not exist");
    } catch (AccessDeniedException e) {
      throw new IllegalArgumentException("config file " + path + " cannot be read: access denied");
    } catch (IOException e) {
      throw new IllegalArgumentException(
          "config file " + path + " cannot be read: " + e.getMessage());
    }
    return parse(path, text);
  }

  /** Parses {@code text}, naming {@code path} in errors. */
  static ConfigFile parse(Path path, String text) {
    LoaderOptions options = new LoaderOptions();
    options.setAllowDuplicateKeys(true); // reported below, with both lines
    options.setMaxAliasesForCollections(10);
    options.setCodePointLimit(MAX_CHARS);
    Node root;
    try (Reader reader = new java.io.StringReader(text)) {
      root = new Yaml(new SafeConstructor(options)).compose(reader);
    } catch (MarkedYAMLException e) {
      throw new IllegalArgumentException(
          "config file " + path + " is not valid YAML: " + e.getProblem() + at(e.getProblemMark()));
    } catch (YAMLException | IOException e) {
      throw new IllegalArgumentException(
          "config file " + path + " is not valid YAML: " + e.getMessage());
    }
    if (root == null) {
      return new ConfigFile(path, Map.of()); // empty, or only comments
    }
    if (!(root instanceof MappingNode mapping)) {
      throw new IllegalArgumentException(
          "config file "
              + path
              + " must be a mapping of flag names to values (like 'mode: pod'), not a "
              + kind(root));
    }
    Map<String, Entry> entries = new LinkedHashMap<>();
    for (NodeTuple tuple : mapping.getValue()) {
      Node keyNode = tuple.getKeyNode();
      int line = line(keyNode);
      if (!(keyNode instanceof ScalarNode key) || key.getValue().isEmpty()) {
        throw new IllegalArgumentException(where(path, line) + "a key must be a flag name");
      }
      String name = key.getValue();
      Entry previous = entries.get(name);
      if (previous != null) {
        throw new IllegalArgumentException(
            where(path, line) + name + " is given twice (also on line " + previous.line() + ")");
      }
      entries.put(name, entry(path, name, tuple.getValueNode(), line));
    }
    return new ConfigFile(path, Collections.unmodifiableMap(entries));
  }

  private static Entry entry(Path path, String key, Node value, int line) {
    if (value instanceof ScalarNode scalar) {
      if (scalar.getTag().equals(Tag.NULL)) {
        throw new IllegalArgumentException(
            where(path, line) + key + " has no value (write '' for an empty one)");
      }
      return new Entry(key, List.of(scalar.getValue()), false, line);
    }
    if (value instanceof SequenceNode sequence) {
      List<String> values = new ArrayList<>();
      for (Node item : sequence.getValue()) {
        if (!(item instanceof ScalarNode scalar) || scalar.getTag().equals(Tag.NULL)) {
          throw new IllegalArgumentException(
              where(path, line(item))
                  + key
                  + ": a list may hold only plain values, not a "
                  + kind(item));
        }
        values.add(scalar.getValue());
      }
      return new Entry(key, List.copyOf(values), true, line);
    }
    throw new IllegalArgumentException(
        where(path, line) + key + " must be a value or a list of values, not a " + kind(value));
  }

  static String where(Path path, int line) {
    return "config file " + path + ", line " + line + ": ";
  }

  private static int line(Node node) {
    return node.getStartMark() == null ? 0 : node.getStartMark().getLine() + 1;
  }

  private static String at(Mark mark) {
    return mark == null
        ? ""
        : " (line " + (mark.getLine() + 1) + ", column " + (mark.getColumn() + 1) + ")";
  }

  private static String kind(Node node) {
    if (node instanceof MappingNode) {
      return "mapping";
    }
    if (node instanceof SequenceNode) {
      return "list";
    }
    return node instanceof ScalarNode scalar && scalar.getTag().equals(Tag.NULL)
        ? "null"
        : "single value";
  }
}
