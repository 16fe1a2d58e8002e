package io.github.kpf.lag;

import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.admin.Admin;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.admin.ListOffsetsOptions;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.admin.ListOffsetsResult.ListOffsetsResultInfo;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.IsolationLevel;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.TopicPartition;

/**
 * Latest offsets from Kafka's admin API, with the Kafka client the Flink Kafka SQL connector jar ships (relocated
 * under {@code org.apache.flink.kafka.shaded}; the job loads that jar anyway, and its version is pinned in
 * jvm/pom.xml). The client gets the source's own properties (bootstrap servers, security settings), so it reaches
 * the cluster exactly as the source does.
 */
final class AdminEndOffsets implements EndOffsets {
    private final Admin admin;
    private final ListOffsetsOptions options;

    AdminEndOffsets(Properties properties) {
        this.admin = Admin.create(properties);
        boolean committed = "read_committed".equalsIgnoreCase(String.valueOf(properties.get("isolation.level")));
        this.options =
                new ListOffsetsOptions(committed ? IsolationLevel.READ_COMMITTED : IsolationLevel.READ_UNCOMMITTED);
    }

    @Override
    public Map<TopicPartitionKey, Long> latest(Collection<TopicPartitionKey> partitions, Duration timeout)
            throws Exception {
        Map<TopicPartition, OffsetSpec> request = new HashMap<>();
        for (TopicPartitionKey key : partitions) {
            request.put(new TopicPartition(key.topic(), key.partition()), OffsetSpec.latest());
        }
        Map<TopicPartition, ListOffsetsResultInfo> answer =
                admin.listOffsets(request, options).all().get(timeout.toMillis(), TimeUnit.MILLISECONDS);
        Map<TopicPartitionKey, Long> offsets = new HashMap<>();
        answer.forEach((tp, info) -> offsets.put(new TopicPartitionKey(tp.topic(), tp.partition()), info.offset()));
        return offsets;
    }

    @Override
    public void close() {
        admin.close(Duration.ofSeconds(5));
    }
}
