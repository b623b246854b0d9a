package io.egresstunnel.proto.status;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;

/**
 * The JSON of both admin listeners' {@code /status}: indented for people reading it with curl, and
 * read back leniently, so that a {@code status} command reads a newer process's answer.
 */
public final class StatusJson {
  private static final ObjectMapper JSON =
      new ObjectMapper()
          .enable(SerializationFeature.INDENT_OUTPUT)
          .disable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

  private StatusJson() {}

  /** {@code report} as JSON. */
  public static String write(Object report) {
    try {
      return JSON.writeValueAsString(report);
    } catch (JsonProcessingException e) {
      throw new IllegalStateException("status does not serialize", e);
    }
  }

  /** A report of {@code type} from a {@code /status} answer. */
  public static <R> R read(String json, Class<R> type) throws JsonProcessingException {
    return JSON.readValue(json, type);
  }
}
