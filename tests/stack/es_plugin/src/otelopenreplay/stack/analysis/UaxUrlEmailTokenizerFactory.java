package otelopenreplay.stack.analysis;

import org.apache.lucene.analysis.Tokenizer;
import org.apache.lucene.analysis.email.UAX29URLEmailTokenizer;
import org.elasticsearch.plugin.Inject;
import org.elasticsearch.plugin.NamedComponent;
import org.elasticsearch.plugin.analysis.TokenizerFactory;
import org.elasticsearch.plugin.settings.AnalysisSettings;
import org.elasticsearch.plugin.settings.IntSetting;

/** Tokenizer {@code uax_url_email}: Unicode word boundaries that keep URLs and e-mail addresses whole. */
@NamedComponent("uax_url_email")
public final class UaxUrlEmailTokenizerFactory implements TokenizerFactory {

    /** Settings of {@code uax_url_email}; Elasticsearch's default token length is 255. */
    @AnalysisSettings
    public interface Settings {
        @IntSetting(path = "max_token_length", defaultValue = 255)
        int maxTokenLength();
    }

    private final int maxTokenLength;

    @Inject
    public UaxUrlEmailTokenizerFactory(Settings settings) {
        this.maxTokenLength = settings.maxTokenLength();
    }

    @Override
    public Tokenizer create() {
        UAX29URLEmailTokenizer tokenizer = new UAX29URLEmailTokenizer();
        tokenizer.setMaxTokenLength(maxTokenLength);
        return tokenizer;
    }
}
