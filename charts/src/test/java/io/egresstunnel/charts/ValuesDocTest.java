package io.egresstunnel.charts;

import static org.assertj.core.api.Assertions.assertThat;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Deque;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * values.yaml is documented key by key, and values.schema.json describes exactly its keys: every
 * key the schema declares has a comment right above it in values.yaml, and the two name the same
 * keys.
 */
class ValuesDocTest {
  private static final Pattern KEY = Pattern.compile("^( *)([A-Za-z][A-Za-z0-9_-]*):(.*)$");

  private static Path chart() {
    return Path.of(System.getProperty("chart.dir", "egress-tunnel"));
  }

  /**
   * The chart's own keys: paths through "properties" of the schema, down to free-form maps; and in
   * {@code structured}, the paths whose keys the schema lists ("" for the top).
   */
  private static Set<String> schemaKeys(Set<String> structured) throws IOException {
    JsonNode schema = new ObjectMapper().readTree(chart().resolve("values.schema.json").toFile());
    Set<String> keys = new TreeSet<>();
    collect(schema, "", keys, structured);
    keys.remove("global"); // helm's, not the chart's
    return keys;
  }

  private static void collect(
      JsonNode node, String prefix, Set<String> out, Set<String> structured) {
    JsonNode props = node.get("properties");
    if (props == null) {
      return;
    }
    structured.add(prefix);
    Iterator<Map.Entry<String, JsonNode>> it = props.fields();
    while (it.hasNext()) {
      Map.Entry<String, JsonNode> e = it.next();
      String key = prefix.isEmpty() ? e.getKey() : prefix + "." + e.getKey();
      out.add(key);
      collect(e.getValue(), key, out, structured);
    }
  }

  @Test
  void everyKeyIsDocumentedAndInTheSchema() throws IOException {
    Set<String> structured = new TreeSet<>();
    Set<String> schema = schemaKeys(structured);
    List<String> lines = Files.readAllLines(chart().resolve("values.yaml"));
    Deque<String[]> stack = new ArrayDeque<>(); // {indent, key}
    Set<String> seen = new TreeSet<>();
    List<String> undocumented = new ArrayList<>();
    for (int i = 0; i < lines.size(); i++) {
      Matcher m = KEY.matcher(lines.get(i));
      if (!m.matches()) {
        continue;
      }
      int indent = m.group(1).length();
      while (!stack.isEmpty() && Integer.parseInt(stack.peek()[0]) >= indent) {
        stack.pop();
      }
      String parent = stack.isEmpty() ? "" : stack.peek()[1];
      String path = parent.isEmpty() ? m.group(2) : parent + "." + m.group(2);
      stack.push(new String[] {String.valueOf(indent), path});
      if (!schema.contains(path)) {
        // fine inside a free-form map (resources, tolerations...): data, not a chart key
        assertThat(structured)
            .as("line %d: %s is not in values.schema.json", i + 1, path)
            .doesNotContain(parent);
        continue;
      }
      seen.add(path);
      String above = i == 0 ? "" : lines.get(i - 1).strip();
      if (!above.startsWith("#")) {
        undocumented.add("line " + (i + 1) + ": " + path);
      }
    }
    assertThat(undocumented).as("keys of values.yaml without a comment right above").isEmpty();
    assertThat(seen).as("keys of values.yaml").containsExactlyInAnyOrderElementsOf(schema);
  }
}
